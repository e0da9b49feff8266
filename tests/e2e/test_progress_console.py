"""The console of `ciqueue-gha run` while the build runs (issue 14): progress lines for the
whole build arrive while tests still run, each failure as it is seen, none of the workers'
progress lines lands in the JUnit, the workers' warnings summaries are gathered into one, the
logs stay where the first line says, and the last line is the build's tally.

The output is read line by line as it arrives, each line stamped with its arrival time; the
suite's tests stamp the time each ended ($SUITE_LOG): "before the last test ended" compares
the two clocks of one machine, with no bound on how long anything takes.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from ciqueue_gha.errors import EXIT_FAILED
from tests.e2e.test_runner import COMMAND_LIMIT, clean_env, cli, copy_suite

PROGRESS = re.compile(
    r"^ciqueue-gha: (\d+)/60 done \(\d+%\), \d+ failed, [\d.]+/s, \d+ workers, ETA "
)
FAILED = re.compile(r"^ciqueue-gha: FAILED check_progress\.py::test_fails_first ")
TALLY = re.compile(r"^ciqueue-gha: 60 tests, 59 passed, 1 failed in [\d.]+s \(exit 1\)$")


def stamped_lines(process: subprocess.Popen[str]) -> list[tuple[float, str]]:
    """Every line of `process`'s output with the time it arrived, until it exits."""
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(COMMAND_LIMIT)
    if reader.is_alive():
        process.kill()
        raise AssertionError("run did not finish:\n" + "\n".join(line for _, line in lines))
    process.wait()
    return lines


def test_run_shows_the_build_while_it_runs(tmp_path: Path) -> None:
    suite = copy_suite("progress", tmp_path)
    ends = tmp_path / "ends.log"
    merged = tmp_path / "merged.xml"
    env = clean_env(tmp_path, SUITE_LOG=str(ends), CIQUEUE_PROGRESS_INTERVAL="0.5")
    argv = [*cli(), "run", "--workers", "2", "--junit-xml", str(merged), "--", "-q"]
    merged_output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    process = subprocess.Popen(argv, cwd=suite, env=env, start_new_session=True, **merged_output)
    lines = stamped_lines(process)
    output = "\n".join(line for _, line in lines)
    assert process.returncode == EXIT_FAILED, output
    last_test_ended = max(float(stamp) for stamp in ends.read_text().split())

    # While it runs: a progress line with some (not all) done, and the failure, arrive before
    # the last test ended.
    during = [line for at, line in lines if at < last_test_ended]
    partial = [m for line in during if (m := PROGRESS.match(line)) and 0 < int(m[1]) < 60]
    assert partial, output
    assert any(FAILED.match(line) for line in during), output
    assert lines[-1][1] and TALLY.match(lines[-1][1]), output

    # The logs are where the first line says, with the workers' own progress lines in them,
    # and none of those lines in the JUnit, which keeps the tests' output.
    logs = Path(re.search(r"logs in (\S+)", lines[0][1])[1])  # type: ignore[index]
    worker_logs = [log.read_text() for log in sorted(logs.glob("worker-*.log"))]
    assert len(worker_logs) == 2
    assert any("] ran " in log for log in worker_logs), worker_logs
    captured = [e.text or "" for e in ET.parse(merged).iter() if e.tag.startswith("system-")]
    assert any("output of test" in text for text in captured)
    assert not [text for text in captured if "ciqueue-gha" in text]

    # One warnings summary of the build, the warning once, both tests that raised it named
    # (whichever workers ran them).
    assert output.count("warnings summary (every worker's)") == 1, output
    gathered = output.split("warnings summary (every worker's)")[1]
    assert gathered.count("DeprecationWarning: this API is old") == 1, output
    assert "test_warns[0]" in gathered and "test_warns[1]" in gathered
