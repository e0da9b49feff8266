"""`ciqueue-gha` needing a newer Redis than the product does, so a test sees the "too old"
error from a real process against the real server it has:

    python -m tests.support.newer_redis_cli MAJOR.MINOR ARGS...
"""

from __future__ import annotations

import sys

from ciqueue_gha import defaults
from ciqueue_gha.cli import main

if __name__ == "__main__":
    major, _, minor = sys.argv[1].partition(".")
    defaults.MIN_REDIS_VERSION = (int(major), int(minor or 0))
    sys.argv[1:] = sys.argv[2:]
    main()
