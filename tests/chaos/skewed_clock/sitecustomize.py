"""Shifts this Python process's wall clock by CHAOS_CLOCK_SKEW seconds, as a runner whose
clock is off would see it.

Python imports `sitecustomize` at start-up from PYTHONPATH, so putting this folder on the
PYTHONPATH of one worker (its heartbeat helper inherits it) skews that worker alone. Only
the wall clock moves: `time.time` and `time.time_ns`, which pytest's timing and the worker's
records read. The monotonic clock does not: it counts from boot, and a runner's clock being
off does not change it. Used by the chaos suite when libfaketime is not installed.
"""

from __future__ import annotations

import os
import time

_skew = float(os.environ.get("CHAOS_CLOCK_SKEW") or 0)

if _skew:
    _wall, _wall_ns = time.time, time.time_ns

    def _skewed() -> float:
        return _wall() + _skew

    def _skewed_ns() -> int:
        return _wall_ns() + int(_skew * 1_000_000_000)

    time.time = _skewed
    time.time_ns = _skewed_ns
