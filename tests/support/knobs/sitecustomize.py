"""Test-only knobs for the ciqueue-gha processes a test starts with this folder on
``PYTHONPATH`` (Python imports ``sitecustomize`` at start-up, a re-exec included).

``CIQUEUE_MIN_REDIS_VERSION=MAJOR.MINOR`` raises the oldest Redis accepted, so a test sees
the real "too old" error from the one server it has. Not part of the product.
"""

from __future__ import annotations

import os

_raw = os.environ.get("CIQUEUE_MIN_REDIS_VERSION", "")
if _raw:
    from ciqueue_gha import defaults

    _major, _, _minor = _raw.partition(".")
    defaults.MIN_REDIS_VERSION = (int(_major), int(_minor or 0))
