"""The job summary: content, escaping, and staying well formed within the size limit."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from ciqueue_gha.queue.record import CaseRecord
from ciqueue_gha.report.build import BuildReport, CaseHistory
from ciqueue_gha.report.markdown import code, fenced, render_job_summary, truncated_note
from ciqueue_gha.report.utilization import WorkerUsage
from ciqueue_gha.truncate import JOB_SUMMARY_LIMIT as SUMMARY_LIMIT

USAGE = [WorkerUsage("w1", 3, 3, 30.0, 10.0), WorkerUsage("w2", 1, 1, 10.0, 30.0)]


def assert_well_formed(markdown: str) -> None:
    """Every fence closed by a fence as long, every <details> closed outside code blocks,
    every table row with as many cells as its header."""
    fence = ""
    details = 0
    columns = 0
    for line in markdown.split("\n"):
        if fence:
            if line.rstrip() == fence:
                fence = ""
            elif re.fullmatch(r"`{3,}\s*", line):
                assert len(line.strip()) < len(fence), f"fence {line!r} inside {fence!r}"
            continue
        opener = re.match(r"(`{3,})", line)
        if opener:
            fence = opener.group(1)
            assert "`" not in line[len(fence) :], line
            continue
        details += line.count("<details>") - line.count("</details>")
        assert details >= 0, "</details> before its <details>"
        if line.startswith("|"):
            cells = len(re.findall(r"(?<!\\)\|", line)) - 1
            if columns == 0:
                columns = cells
            assert cells == columns, f"row with {cells} cells, header {columns}: {line}"
        else:
            columns = 0
    assert not fence, "a code fence is left open"
    assert details == 0, "a <details> is left open"


def with_usage(report: BuildReport) -> BuildReport:
    return dataclasses.replace(report, usage=USAGE)


def report_of(
    failures: int = 0,
    traceback: str = "E   assert 1 == 2\n",
    passes: int = 0,
    missing: int = 0,
    name: str = "tests/test_{i}.py::test_{i}",
) -> BuildReport:
    cases = [
        CaseHistory(
            CaseRecord(
                name.format(i=i),
                "failed",
                duration=i / 10,
                message=f"assert {i} == 2",
                longrepr=traceback,
                file=f"tests/test_{i}.py",
                line=i + 1,
            ),
            name.format(i=i),
            f"w{i % 3}",
        )
        for i in range(failures)
    ]
    cases += [
        CaseHistory(CaseRecord(f"tests/test_ok.py::test_{i}", "passed", duration=1.0), "u", "w1")
        for i in range(passes)
    ]
    lost = [f"tests/test_lost.py::test_{i}" for i in range(missing)]
    return BuildReport(cases, lost, {}, len(cases) + missing)


def test_a_passing_build() -> None:
    summary = render_job_summary(with_usage(report_of(passes=3)), build="12 attempt 1")
    assert summary.startswith("## ciqueue-gha: build 12 attempt 1: ✅ passed\n")
    assert "| 3 | 3 | 0 | 0 | 0 | 0 | 0 |" in summary
    assert "### Failures" not in summary and "<details>" not in summary
    assert "| <code>w1</code> | 3 | 30.0 | 10.0 | 75% |" in summary
    assert "| <code>w2</code> | 1 | 10.0 | 30.0 | 25% |" in summary
    assert "[!NOTE]" not in summary
    assert_well_formed(summary)


def test_failures_are_folded_with_their_traceback() -> None:
    summary = render_job_summary(report_of(failures=2), build="b")
    assert "## ciqueue-gha: build b: ❌ failed" in summary
    assert summary.count("<details><summary>❌ FAILED <code>tests/test&#95;1.py") == 1
    assert "```text\nE   assert 1 == 2\n```" in summary
    assert "### Worker utilization" not in summary
    assert_well_formed(summary)


def test_incomplete_build_says_why_and_lists_what_did_not_run() -> None:
    summary = render_job_summary(
        report_of(passes=1, missing=2), build="b", verdict_text="report timeout"
    )
    assert "⚠️ incomplete" in summary
    assert "**Stopped waiting: report timeout.**" in summary
    assert "| <code>tests/test&#95;lost.py::test&#95;1</code> | no worker finished it |" in summary


@pytest.mark.parametrize(
    "name",
    [
        "t.py::test[a|b]",
        "t.py::test[</details><script>]",
        "t.py::test[```]",
        "t.py::test[**x** _y_ ~~z~~ $m$ [l](u) \\|]",
        "t.py::test[line\nbreak\r|]",
        "t.py::test[&amp; &#124;]",
    ],
)
def test_names_cannot_break_the_markdown(name: str) -> None:
    summary = render_job_summary(
        report_of(failures=1, name=name, traceback="```\n</details>\n````\n"), build=name
    )
    assert_well_formed(summary)
    rendered = code(name)
    assert rendered in summary
    inside = rendered.removeprefix("<code>").removesuffix("</code>")
    assert not set(inside) & set("<>`*_[]|~$\\\n\r")
    assert "&#38;amp;" in code("&amp;")  # an entity in a name is shown, not decoded


def test_fenced_code_is_longer_than_any_backtick_run_inside() -> None:
    assert fenced("a\n````\nb") == "`````text\na\n````\nb\n`````"
    assert fenced("plain") == "```text\nplain\n```"
    assert fenced("\x1b[31mred\x1b[0m\r\n") == "```text\nred\n```"


def test_slowest_tests_top_ten_by_duration() -> None:
    summary = render_job_summary(report_of(failures=15), build="b")
    slowest = summary.split("### Slowest tests (top 10)")[1]
    rows = [line for line in slowest.splitlines() if line.startswith("| <code>")]
    assert len(rows) == 10
    assert rows[0].startswith("| <code>tests/test&#95;14.py::test&#95;14</code> | 1.40 |")
    assert rows[-1].startswith("| <code>tests/test&#95;5.py::test&#95;5</code> | 0.50 |")


def test_a_huge_build_stays_within_1_mib_and_well_formed() -> None:
    traceback = "".join(f"E   line {n:4d} `x` </details> " + "y" * 20 + "\n" for n in range(250))
    assert len(traceback) > 10_000
    big = report_of(failures=5000, traceback=traceback, missing=1000)
    started = time.perf_counter()
    summary = render_job_summary(with_usage(big), build="big")
    elapsed = time.perf_counter() - started
    size = len(summary.encode())
    assert SUMMARY_LIMIT * 0.9 < size <= SUMMARY_LIMIT  # the room is used, not thrown away
    assert_well_formed(summary)
    assert truncated_note(SUMMARY_LIMIT) in summary
    assert "shortened to fit 1 MiB, GitHub's limit" in summary
    # Totals, slowest tests and utilization survive whole.
    assert "| 5000 | 0 | 5000 | 0 | 0 | 0 | 1000 |" in summary
    assert "### Slowest tests (top 10)" in summary and "### Worker utilization" in summary
    # Tracebacks went first: every failure keeps its row, only the earliest their traceback.
    assert summary.count("❌ FAILED") == 5000
    assert 0 < summary.count("<details>") < 100
    assert "FAILED <code>tests/test&#95;0.py::test&#95;0</code>" in summary.split("<details>")[1]
    assert "</details> yyyy" in summary  # inside a fence, where it cannot close anything
    assert elapsed < 5


def test_rows_beyond_what_fits_are_counted_not_shown() -> None:
    big = report_of(failures=20_000, traceback="E   boom\n", missing=500)
    summary = render_job_summary(with_usage(big), build="big")
    assert len(summary.encode()) <= SUMMARY_LIMIT
    assert_well_formed(summary)
    assert "<details>" not in summary
    shown = summary.count("- ❌ FAILED")
    assert 1000 < shown < 20_000
    assert f"… and {20_000 - shown} more failures, left out to fit the size limit." in summary
    # Failures come first; the tests that did not run keep their heading and count.
    assert "### Not run (500)\n\n… and 500 more tests that did not run" in summary


def test_tracebacks_go_before_rows() -> None:
    traceback = "E   " + "z" * 20_000 + "\n"
    big = report_of(failures=40, traceback=traceback)
    summary = render_job_summary(big, build="b", limit=100_000)
    assert len(summary.encode()) <= 100_000
    assert_well_formed(summary)
    assert "shortened to fit 100,000 bytes:" in summary
    assert summary.count("❌ FAILED") == 40  # every failure is listed...
    folded = summary.count("<details>")
    assert 0 < folded < 40  # ...the earliest with their tracebacks, while room lasts
    assert summary.index("<details>") < summary.index("- ❌ FAILED")


@pytest.mark.parametrize("limit", [600, 1_000, 2_000, 5_000, 20_000, 100_000])
def test_any_limit_is_honoured(limit: int) -> None:
    big = report_of(failures=50, traceback="E   ü" * 500, missing=50, name="tests/t.py::test_é{i}")
    summary = render_job_summary(with_usage(big), build="b", limit=limit)
    assert len(summary.encode()) <= limit
    assert_well_formed(summary)


def test_a_limit_below_the_totals_still_gives_the_heading() -> None:
    summary = render_job_summary(with_usage(report_of(failures=3)), build="b", limit=30)
    assert len(summary.encode()) <= 30
    assert summary.startswith("## ciqueue-gha")
