"""Tests that need no Redis: fast, run first."""
