"""A hung test costs one worker, once (DESIGN.md §2), through `ciqueue-gha run` and real
processes: past --max-test-duration the unit is recorded as an error (timeout) with the hung
test's stack, it is not handed to another worker, what the stuck worker held ahead goes back at
once, and that worker exits instead of hanging forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_FAILED

MAX_TEST_DURATION = 5.0
LEASE_TIMEOUT = 2.0

#: max-test-duration + lease-timeout + a few seconds, with room for a loaded machine.
BUILD_LIMIT = 30.0

#: The hung test sleeps this long (for ever, as far as the build goes); so that nothing is left
#: behind should the worker survive, it is finite.
HANG = 600

SUITE = f"""\
import os
import time

import pytest


def ran(name):
    with open(os.environ["HANG_LOG"], "a") as log:
        log.write(f"{{name}} {{os.environ['CIQUEUE_WORKER_ID']}} {{os.getpid()}}\\n")


@pytest.mark.parametrize("n", range(30))
def test_before(n):
    ran(f"before[{{n}}]")
    time.sleep(0.02)


def test_hangs():
    ran("hangs")
    time.sleep({HANG})


@pytest.mark.parametrize("n", range(30))
def test_after(n):
    ran(f"after[{{n}}]")
    time.sleep(0.02)
"""

HANG_LINE = SUITE.splitlines().index(f"    time.sleep({HANG})") + 1
FAST = [f"before[{n}]" for n in range(30)] + [f"after[{n}]" for n in range(30)]


def cli() -> list[str]:
    script = Path(sys.executable).with_name("ciqueue-gha")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ciqueue_gha.cli"]


@pytest.mark.slow
def test_a_hung_test_is_one_timeout_error_and_every_other_test_runs_once(tmp_path: Path) -> None:
    (tmp_path / "test_hang_suite.py").write_text(SUITE)
    log = tmp_path / "ran.log"
    junit = tmp_path / "merged.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIQUEUE_", "GITHUB_"))}
    env["HANG_LOG"] = str(log)
    argv = [
        *cli(), "run",
        "--workers", "3",
        "--max-test-duration", str(MAX_TEST_DURATION),
        "--lease-timeout", str(LEASE_TIMEOUT),
        "--junit-xml", str(junit),
        "--log-dir", str(tmp_path / "logs"),
        "--", "-q", "-p", "no:cacheprovider", "test_hang_suite.py",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BUILD_LIMIT * 3
    )
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    print(f"build took {took:.1f} s")

    assert done.returncode == EXIT_FAILED, output
    assert took < BUILD_LIMIT, (took, output)
    assert "Traceback" not in done.stderr, output

    lines = [line.split() for line in log.read_text().splitlines()]
    runs = Counter(name for name, _, _ in lines)
    # Run once, on one worker: never handed on to the next.
    assert runs["hangs"] == 1, runs
    assert {name: runs[name] for name in FAST} == dict.fromkeys(FAST, 1), runs
    assert set(runs) == {"hangs", *FAST}

    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert len(cases) == 61, sorted(cases)
    hung = cases["test_hangs"]
    errors = [child for child in hung if child.tag in ("error", "failure")]
    assert [child.tag for child in errors] == ["error"], ET.tostring(hung)
    assert "timeout" in (errors[0].get("message") or ""), ET.tostring(hung)
    # Where it hung: the stack faulthandler took, and the line it points at.
    assert f'test_hang_suite.py", line {HANG_LINE} in test_hangs' in (errors[0].text or "")
    assert (hung.get("file"), hung.get("line")) == ("test_hang_suite.py", str(HANG_LINE))
    for name, case in cases.items():
        if name != "test_hangs":
            assert not [c for c in case if c.tag in ("error", "failure", "skipped")], name
    # One thing said of each test: the hung one is an error, not taken over; none is not run.
    assert "NOT RUN" not in done.stdout, done.stdout
    assert "TAKEN OVER test_hang_suite.py::test_hangs" not in done.stdout, done.stdout

    # The worker stuck in the hung test exited as documented, and is gone.
    hung_pid = int(next(pid for name, _, pid in lines if name == "hangs"))
    with pytest.raises(ProcessLookupError):
        os.kill(hung_pid, 0)
    hung_worker = next(worker for name, worker, _ in lines if name == "hangs")
    worker_log = (tmp_path / "logs" / f"{hung_worker}.log").read_text(errors="replace")
    assert "ran longer than --max-test-duration" in worker_log, worker_log
