"""A build of 100,000 tests: merged into JUnit and summarized in under 10 s and 500 MB.

Starts a private redis-server and runs the build's queue side in this process: the leader
populates 100,000 tests (realistic node ids), then four `QueueWorker`s take turns finalizing
them, each acknowledge carrying a small attempt record (as a trivial test's) and the next
reserve; one test in a thousand fails with a traceback. Then a fresh interpreter does what
the summary does after its wait, one phase at a time: `BuildRecord.load_attempts`,
`BuildReport.from_records` (worker usage included), `write_junit`, and the job summary
(`render_job_summary`). Each phase's seconds and the process's peak resident memory when it ends
(ru_maxrss, which only grows) are printed:

    python -m benchmarks.scale [--tests N] [--limit S] [--memory MB]

The target covers merge + report, the summary's own work: under `--limit` seconds in all,
peak memory under `--memory` MB. Populate and finalize are figures to watch (the populate
benchmark holds populate's own target).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

from benchmarks.populate import node_ids
from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, CaseRecord, Lease, QueueWorker, Reservation
from ciqueue_gha.redis_server import PrivateRedis

TESTS = 100_000
LIMIT_SECONDS = 10.0
LIMIT_MB = 500.0
WORKERS = 4
#: One test in this many fails, with a traceback, so the reports have failures to show.
FAIL_EVERY = 1000
BUILD = "benchmark-scale"

TRACEBACK = "\n".join(
    f'  File "src/app/module_{i}.py", line {10 * i}, in handler_{i}\n    result = step_{i}(x)'
    for i in range(12)
)


@dataclass(frozen=True)
class Row:
    phase: str
    seconds: float
    peak_mb: float | None = None  # the process's peak RSS when the phase ended

    def line(self) -> str:
        peak = f"{self.peak_mb:>10.0f}" if self.peak_mb is not None else f"{'-':>10}"
        return f"{self.phase:<34} {self.seconds:>9.3f} {peak}"


HEADER = f"{'phase':<34} {'seconds':>9} {'peak MB':>10}"


def peak_mb() -> float:
    """This process's peak resident memory so far, MB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def record_for(test: str, index: int, started: float) -> AttemptRecord:
    """A small attempt record, shaped as the pytest plugin writes one for a one-test unit."""
    failed = index % FAIL_EVERY == FAIL_EVERY - 1
    path = test.split("::", 1)[0]
    case = CaseRecord(
        nodeid=test,
        outcome="failed" if failed else "passed",
        duration=0.002 + (index % 7) / 1000,
        message="AssertionError: assert 41 == 42" if failed else "",
        longrepr=f"{TRACEBACK}\nE   AssertionError: assert 41 == 42" if failed else "",
        file=path,
        line=10 + index % 90,
    )
    return AttemptRecord(
        unit=test,
        outcome=case.outcome,
        duration=case.duration,
        started_at=started,
        longrepr=case.longrepr,
        file=case.file,
        line=case.line,
        cases=[case],
    )


def finalize_all(workers: list[QueueWorker]) -> int:
    """Let the workers take turns until the queue is exhausted; returns tests finalized."""
    clock = [time.time()] * len(workers)
    held: list[Reservation | None] = [worker.reserve() for worker in workers]
    done = 0
    while any(isinstance(lease, Lease) for lease in held):
        for n, worker in enumerate(workers):
            lease = held[n]
            if not isinstance(lease, Lease):
                continue
            record = record_for(lease.unit, done, clock[n])
            clock[n] += record.duration
            disposition, held[n] = worker.acknowledge(lease, record)
            if disposition != "final":
                raise SystemExit(f"scale: {lease.unit} was {disposition}, expected final")
            done += 1
    return done


def timed(phase: str, action: Callable[[], object]) -> Row:
    start = time.perf_counter()
    action()
    return Row(phase, time.perf_counter() - start)


def build_queue(url: str, tests: list[str]) -> list[Row]:
    """Populate and finalize every test; the figures for the queue side of the build."""
    keys = BuildKeys(BUILD)
    with ExitStack() as stack:
        clients = [stack.enter_context(closing(connect(url))) for _ in range(WORKERS)]
        workers = [QueueWorker(c, keys, f"worker-{n}") for n, c in enumerate(clients)]
        populate = timed("populate (leader)", lambda: workers[0].populate(tests))
        for worker in workers[1:]:
            worker.populate(tests)
        start = time.perf_counter()
        finalized = finalize_all(workers)
        finalize = Row(f"finalize ({WORKERS} workers)", time.perf_counter() - start)
        if finalized != len(tests):
            raise SystemExit(f"scale: finalized {finalized} of {len(tests)} tests")
    return [populate, finalize]


def report_phases(url: str, junit: Path, markdown: Path) -> list[Row]:
    """The summary's merge and report, in this process (the child): one row per phase."""
    # Imported here: the child's memory should hold what the summary holds, nothing more.
    from ciqueue_gha.queue import BuildRecord
    from ciqueue_gha.report.build import BuildReport
    from ciqueue_gha.report.junit import write_junit
    from ciqueue_gha.report.markdown import render_job_summary

    rows = [Row("interpreter and imports", 0.0, peak_mb())]
    keys = BuildKeys(BUILD)
    with closing(connect(url)) as client:
        start = time.perf_counter()
        records = BuildRecord.load_attempts(client, keys)
        rows.append(Row("load (BuildRecord.load_attempts)", time.perf_counter() - start, peak_mb()))
    start = time.perf_counter()
    report = BuildReport.from_records(records)
    rows.append(Row("merge (BuildReport.from_records)", time.perf_counter() - start, peak_mb()))
    start = time.perf_counter()
    write_junit(report, junit)
    rows.append(Row("write_junit", time.perf_counter() - start, peak_mb()))
    start = time.perf_counter()
    summary = render_job_summary(report, build=f"{BUILD} attempt 1")
    markdown.write_text(summary, encoding="utf-8")
    rows.append(Row("job summary (Markdown)", time.perf_counter() - start, peak_mb()))
    return rows


def run_report_child(url: str, junit: Path, markdown: Path) -> list[Row]:
    """Run `report_phases` in a fresh interpreter, so its peak memory is the summary's own."""
    argv = [sys.executable, "-m", "benchmarks.scale", "--child", url, str(junit), str(markdown)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"scale: the report process failed:\n{done.stderr[-3000:]}")
    return [Row(phase, seconds, peak) for phase, seconds, peak in json.loads(done.stdout)]


def check_reports(junit: Path, markdown: Path, tests: int) -> None:
    """Fail loudly if the reports measured do not hold the build."""
    cases = sum(1 for _, element in ET.iterparse(junit) if element.tag == "testcase")
    failures = tests // FAIL_EVERY
    summary = markdown.read_text(encoding="utf-8")
    if cases != tests:
        raise SystemExit(f"scale: the JUnit file holds {cases} testcases, expected {tests}")
    if f"{tests:,}" not in summary and str(tests) not in summary:
        raise SystemExit(f"scale: the job summary does not mention {tests} tests")
    if failures and "AssertionError" not in summary:
        raise SystemExit("scale: the job summary does not show the failures")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=TESTS, help="tests in the build")
    parser.add_argument("--limit", type=float, default=LIMIT_SECONDS, help="merge + report, s")
    parser.add_argument("--memory", type=float, default=LIMIT_MB, help="peak memory target, MB")
    parser.add_argument("--child", nargs=3, metavar=("URL", "JUNIT", "MARKDOWN"), help="internal")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        url, junit, markdown = args.child
        rows = report_phases(url, Path(junit), Path(markdown))
        print(json.dumps([[row.phase, row.seconds, row.peak_mb] for row in rows]))
        return 0
    tests = node_ids(args.tests)
    with PrivateRedis() as server, tempfile.TemporaryDirectory(prefix="ciq-scale-") as tmp:
        queue_rows = build_queue(server.url, tests)
        junit, markdown = Path(tmp) / "junit.xml", Path(tmp) / "summary.md"
        report_rows = run_report_child(server.url, junit, markdown)
        check_reports(junit, markdown, len(tests))
        junit_mb = junit.stat().st_size / 1e6
    seconds = sum(row.seconds for row in report_rows)
    peak = max(row.peak_mb or 0.0 for row in report_rows)
    print(f"{len(tests):,} tests, {WORKERS} workers, 1 in {FAIL_EVERY} failing")
    print(HEADER)
    print("\n".join(row.line() for row in queue_rows))
    print("\n".join(row.line() for row in report_rows))
    print(Row("merge + report, in all", seconds, peak).line())
    print(f"merged JUnit: {junit_mb:.1f} MB")
    if seconds > args.limit or peak > args.memory:
        print(
            f"scale: FAILED, merge + report took {seconds:.2f} s and {peak:.0f} MB "
            f"(targets: under {args.limit:g} s and {args.memory:g} MB)"
        )
        return 1
    print(f"scale: ok, merge + report under {args.limit:g} s and {args.memory:g} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
