"""Tests against a real redis-server, started by a fixture."""
