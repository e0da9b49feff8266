"""ciqueue-gha: one pytest suite over many GitHub Actions jobs, through a lease queue in Redis.

PYTEST_DONT_REWRITE: the worker imports this package before pytest loads its entry point, so
pytest must not try (and warn that it cannot) to rewrite its asserts.
"""

__version__ = "0.1.0"
