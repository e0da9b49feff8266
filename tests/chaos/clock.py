"""How the chaos suite puts one worker's clock an hour off.

With Debian's libfaketime installed (`apt-get install faketime`), the worker runs with it
preloaded (``LD_PRELOAD``, ``FAKETIME=+3600``, ``DONT_FAKE_MONOTONIC=1``): every wall-clock
call of the process and of its children (the heartbeat helper), from C or Python, is an hour
off, as on a runner whose clock is wrong. Without it, `skewed_clock/sitecustomize.py` shifts
Python's `time.time` and `time.time_ns` the same way. The monotonic clock stays true either
way: it is local to the runner, and a wrong wall clock does not move it.

`probe` runs a Python process under a mechanism, has it sleep, and measures the skew it sees,
so the suite knows the skew is real before relying on it. libfaketime 0.9.10 (Debian 12)
with DONT_FAKE_MONOTONIC breaks `time.sleep` (EINVAL from clock_nanosleep), so `find`
keeps libfaketime only when its probe passes, and falls back to the shim otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LIBFAKETIME_PATHS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)

SHIM_FOLDER = Path(__file__).resolve().parent / "skewed_clock"


@dataclass(frozen=True)
class ClockSkewer:
    """Environment variables that put a process's wall clock `seconds` off."""

    mechanism: str  # "libfaketime" or "sitecustomize"
    library: str = ""

    @classmethod
    def find(cls, seconds: float) -> ClockSkewer:
        """libfaketime when installed and working for `seconds` both ways, else the shim."""
        for path in LIBFAKETIME_PATHS:
            if Path(path).is_file():
                candidate = cls("libfaketime", path)
                if all(candidate.works(skew) for skew in (seconds, -seconds)):
                    return candidate
        return cls("sitecustomize")

    def works(self, seconds: float) -> bool:
        try:
            return abs(self.probe(seconds) - seconds) < 60
        except subprocess.CalledProcessError:
            return False

    def env(self, seconds: float) -> dict[str, str]:
        if self.mechanism == "libfaketime":
            return {
                "LD_PRELOAD": self.library,
                "FAKETIME": f"{seconds:+.0f}",
                "DONT_FAKE_MONOTONIC": "1",
            }
        return {"PYTHONPATH": str(SHIM_FOLDER), "CHAOS_CLOCK_SKEW": f"{seconds:.0f}"}

    def probe(self, seconds: float) -> float:
        """The skew a fresh Python process under this mechanism sees, in seconds."""
        env = {**os.environ, **self.env(seconds)}
        before = time.time()
        seen = subprocess.run(
            [sys.executable, "-c", "import time; time.sleep(0.01); print(time.time())"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        return float(seen) - (before + time.time()) / 2
