"""ciqueue-gha: one pytest suite over many GitHub Actions jobs, through a lease queue in Redis."""

__version__ = "0.1.0"
