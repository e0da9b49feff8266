"""The test suite; a package so tests can import helpers from tests.support."""
