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


def start(argv: list[str], cwd: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    with (cwd / f"{name}.out").open("wb") as out, (cwd / f"{name}.err").open("wb") as err:
        return subprocess.Popen(
            [*cli(), *argv], cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )


MATRIX_SUITE = """\
import signal
import time

import pytest


@pytest.mark.parametrize("n", range(10))
def test_fast(n):
    time.sleep(0.02)


def test_hangs():
    if DEAF:
        # Deaf to every signal a worker may be sent but SIGKILL: no stack, no clean exit.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM})
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.parametrize("deaf", [False, True], ids=["hung", "hung-deaf-to-signals"])
def test_the_worker_stuck_in_a_hung_test_ends(tmp_path: Path, redis_url: str, deaf: bool) -> None:
    """Two `worker` processes and a `summary` (a matrix build): the worker stuck in the hung
    test ends with exit 1 (its unit failed), the other runs the rest; a test that blocks the
    signals still costs one worker, once: no stack, and its worker is killed."""
    (tmp_path / "test_matrix_suite.py").write_text(f"DEAF = {deaf}\n" + MATRIX_SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIQUEUE_", "GITHUB_"))}
    env.update(CIQUEUE_REDIS_URL=redis_url, CIQUEUE_BUILD_ID=f"matrix-{os.getpid()}-{deaf}")
    timing = ["--max-test-duration", "3", "--lease-timeout", "2"]
    pytest_args = ["--", "-q", "-p", "no:cacheprovider", "test_matrix_suite.py"]
    started = time.monotonic()
    workers = [
        start(["worker", "--worker-id", f"w{n}", *timing, *pytest_args], tmp_path, env, f"w{n}")
        for n in range(2)
    ]
    summary = start(["summary", "--junit-xml", "merged.xml"], tmp_path, env, "summary")
    try:
        assert summary.wait(timeout=BUILD_LIMIT) == EXIT_FAILED
        codes = sorted(worker.wait(timeout=BUILD_LIMIT) for worker in workers)
    finally:
        for process in (*workers, summary):
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()
    took = time.monotonic() - started
    errs = "".join((tmp_path / f"{name}.err").read_text() for name in ("w0", "w1", "summary"))
    # The stuck worker exits 1, or is killed (-9) when deaf; the other ran the rest and passed.
    assert codes == ([-9, 0] if deaf else [0, EXIT_FAILED]), errs
    assert took < BUILD_LIMIT, took
    assert "Traceback" not in errs, errs
    cases = {case.get("name"): case for case in ET.parse(tmp_path / "merged.xml").iter("testcase")}
    assert len(cases) == 11
    error = cases["test_hangs"].find("error")
    assert error is not None and "timeout" in (error.get("message") or "")
    # A stack only from a worker that could be asked for one.
    assert ("in test_hangs" in (error.text or "")) is not deaf, error.text
    assert sum(case.find("error") is not None for case in cases.values()) == 1
