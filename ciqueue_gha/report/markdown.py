"""The job summary: GitHub-flavoured Markdown within GitHub's 1 MiB per step.

Sections: the verdict and totals, failures with their tracebacks folded (each with its
standing: new, known flaky, quarantine expired), quarantined failures, expired quarantine
entries, flaky tests, tests taken over from lost workers, tests that did not run, the
slowest tests, and how busy each worker was.

Everything a test supplies (names, messages, worker ids) is shown on one line inside
``<code>``, with every character Markdown or HTML would read as syntax written as a numeric
character reference, so a name like ``test_a[|*<details>`]`` can neither split a table
cell nor open a tag; inside code, GitHub makes no mentions, emoji or links of it either.
The same text is safe in Markdown and in the raw HTML of a ``<summary>``. Tracebacks sit
in fenced code blocks whose fence is longer than any backtick run inside them.

When the whole does not fit `limit` bytes, it shrinks, keeping it well formed (every
``<details>`` closed, every fence closed): first tracebacks go (the earliest failures keep
theirs while room remains), then rows beyond what fits, failures first in priority, each
list saying how many it leaves out, and a note under the totals says the summary was cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from ..truncate import (
    FOLDED_TRACEBACK_LIMIT,
    JOB_SUMMARY_LIMIT,
    ROW_MESSAGE_LIMIT,
    ROW_NAME_LIMIT,
    cut,
    head_bytes,
)
from .build import BuildReport, CaseHistory, interrupted_line
from .plain import one_line, plain
from .utilization import WorkerUsage

#: Rows of the slowest-tests table.
SLOWEST = 10


def truncated_note(limit: int) -> str:
    """The note under the totals of a summary that was shortened to fit `limit` bytes."""
    size = (
        "1 MiB, GitHub's limit for a job summary"
        if limit == JOB_SUMMARY_LIMIT
        else f"{limit:,} bytes"
    )
    return (
        "> [!NOTE]\n"
        f"> This summary was shortened to fit {size}: some tracebacks or rows are left "
        "out. The merged JUnit file has every result."
    )


# Markdown or HTML syntax characters, written as numeric character references.
_SPECIAL = re.compile(r"[&<>\"`*_\[\]\\|~$]")


def text(value: str, limit: int = ROW_MESSAGE_LIMIT) -> str:
    """`value` on one line, safe as Markdown inline text, in a table cell or in raw HTML."""
    return _SPECIAL.sub(lambda m: f"&#{ord(m.group())};", one_line(value, limit))


def code(value: str, limit: int = ROW_NAME_LIMIT) -> str:
    """`value` as inline code (``<code>``), safe in the same places as `text`."""
    return f"<code>{text(value, limit)}</code>"


def fenced(value: str, info: str = "text") -> str:
    """`value` as a fenced code block that nothing inside it can close."""
    body = plain(value).strip("\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


class _Entry:
    """One row of a list: `compact`, or `full` (with its traceback) when room allows.
    `full` is built only when asked for: most of a huge build's tracebacks never are."""

    def __init__(self, compact: str, full: Callable[[], str] | None = None) -> None:
        self.compact = compact
        self._full = full

    @cached_property
    def full(self) -> str:
        return self._full() if self._full else self.compact


@dataclass
class _Section:
    """A heading, a preamble (a table's header) and rows joined by `separator`."""

    heading: str
    entries: list[_Entry]
    more: Callable[[int], str]  # the line saying how many rows are left out
    preamble: str = ""
    separator: str = "\n"

    def render(self, shown: int, full: set[int] | None = None) -> str:
        rows = [
            entry.full if full is None or index in full else entry.compact
            for index, entry in enumerate(self.entries[:shown])
        ]
        parts = [self.heading]
        if rows:
            parts.append(
                (self.preamble + "\n" if self.preamble else "") + self.separator.join(rows)
            )
        if shown < len(self.entries):
            parts.append(self.more(len(self.entries) - shown))
        return "\n\n".join(parts)


def render_job_summary(
    report: BuildReport,
    *,
    build: str,
    verdict_text: str | None = None,
    limit: int = JOB_SUMMARY_LIMIT,
) -> str:
    """The job summary for `report`, within `limit` bytes of UTF-8.

    `build` names the build in the heading (e.g. "1234 attempt 2"); `verdict_text`, when
    given, says why the summary stopped waiting (e.g. "report timeout")."""
    head = _head(report, build, verdict_text)
    sections = [
        section
        for section in (
            _stopped_workers(report),
            _failures(report),
            _quarantined(report),
            _expired(report),
            _not_run(report),
            _flaky(report),
            _takeovers(report),
        )
        if section.entries
    ]
    tail = [block for block in (_slowest(report), _utilization(report.usage)) if block]
    return _whole(head, sections, tail, limit) or _shrink(head, sections, tail, limit)


def _whole(head: str, sections: list[_Section], tail: list[str], limit: int) -> str | None:
    """Everything, tracebacks included, if it fits; None as soon as it clearly cannot."""
    room = limit - _size(head) - sum(_size(block) for block in tail)
    for entry in (entry for section in sections for entry in section.entries):
        room -= _size(entry.full)
        if room < 0:
            return None
    whole = _join(head, [s.render(len(s.entries)) for s in sections], tail)
    return whole if _size(whole) <= limit else None


def _shrink(head: str, sections: list[_Section], tail: list[str], limit: int) -> str:
    """Rows without tracebacks first, as many as fit, failures first; then, if every row
    is in, the tracebacks of the earliest failures in the room left."""
    head = head + "\n\n" + truncated_note(limit)
    # Every section's heading and its "N more" line are always there; count them as spent.
    budget = limit - _size(_join(head, [s.render(0) for s in sections], tail))
    shown = []
    for section in sections:
        count = 0
        for index, entry in enumerate(section.entries):
            cost = _size(entry.compact) + _size(section.separator)
            if index == 0:
                cost += _size(section.preamble) + 3  # the preamble's LF and the blank line
            if cost > budget:
                break
            budget -= cost
            count += 1
        shown.append(count)
    full: list[set[int]] = [set() for _ in sections]
    if all(count == len(s.entries) for s, count in zip(sections, shown, strict=True)):
        for index, section in enumerate(sections):
            full[index], budget = _upgrades(section, budget)
    rendered = [s.render(n, f) for s, n, f in zip(sections, shown, full, strict=True)]
    result = _join(head, rendered, tail)
    if _size(result) <= limit:
        return result
    # Only a limit smaller than the totals themselves gets here.
    return head_bytes(head.split("\n\n")[0], limit)


def _upgrades(section: _Section, budget: int) -> tuple[set[int], int]:
    """The first rows whose full form fits in `budget`, stopping at the first that does not,
    so the failures that keep their traceback are the earliest ones; and what is left."""
    upgraded: set[int] = set()
    for index, entry in enumerate(section.entries):
        extra = _size(entry.full) - _size(entry.compact)
        if extra > budget:
            break
        budget -= extra
        upgraded.add(index)
    return upgraded, budget


def _join(head: str, sections: list[str], tail: list[str]) -> str:
    return "\n\n".join([head, *sections, *tail]) + "\n"


def _size(value: str) -> int:
    return len(value.encode("utf-8"))


def _head(report: BuildReport, build: str, verdict_text: str | None) -> str:
    not_run = len(report.not_run)
    failed, errors = report.count("failed"), report.count("error")
    if report.interrupted:
        status = "❌ interrupted"
    elif not_run or verdict_text:
        status = "⚠️ incomplete"
    elif report.blocking:
        status = "❌ failed"
    else:
        quarantined = len(report.quarantined)
        status = f"✅ passed ({quarantined} quarantined failures)" if quarantined else "✅ passed"
    lines = [f"## ciqueue-gha: build {text(build)}: {status}"]
    if report.interrupted:
        lines.append(f"**{text(interrupted_line(report.collection_errors))}**")
    elif verdict_text:
        lines.append(
            f"**Stopped waiting: {text(verdict_text)}.** Tests that did not run are listed below."
        )
    counts = [
        len(report.cases),
        report.count("passed"),
        failed,
        errors,
        report.count("skipped"),
        len(report.flaky),
        not_run,
    ]
    lines.append(
        "| tests | passed | failed | errors | skipped | flaky | not run |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n" + "| " + " | ".join(map(str, counts)) + " |"
    )
    return "\n\n".join(lines)


def _counted(title: str, entries: list[_Entry], what: str, **layout: str) -> _Section:
    """A section titled with its count of `entries`, whose line for those left out calls
    them `what`; `layout` is the section's preamble or separator."""
    return _Section(
        f"### {title} ({len(entries)})",
        entries,
        lambda n: f"… and {n} more {what}, left out to fit the size limit.",
        **layout,
    )


def _table(title: str, header: str, rows: list[str], what: str) -> _Section:
    """`_counted` for table rows under `header`."""
    return _counted(title, [_Entry(row) for row in rows], what, preamble=header)


def _failures(report: BuildReport) -> _Section:
    entries = [_failure(report, history) for history in report.blocking]
    return _counted("Failures", entries, "failures", separator="\n\n")


def _quarantined(report: BuildReport) -> _Section:
    entries = [_failure(report, history, "⚠️") for history in report.quarantined]
    title = "Quarantined failures, not failing the build"
    return _counted(title, entries, "quarantined failures", separator="\n\n")


def _expired(report: BuildReport) -> _Section:
    rows = [
        f"| {code(entry.pattern)} | {entry.until} | {text(entry.reason)} | {code(entry.source)} |"
        for entry in report.trust.expired
    ]
    header = "| entry | until | reason | from |\n|---|---|---|---|"
    return _table("Expired quarantine entries, no longer applied", header, rows, "entries")


def _failure(report: BuildReport, history: CaseHistory, icon: str = "❌") -> _Entry:
    case = history.final
    label = "ERROR" if case.outcome == "error" else "FAILED"
    where = f" at {code(f'{case.file}:{case.line}')}" if case.file else ""
    message = f": {code(case.message, ROW_MESSAGE_LIMIT)}" if case.message.strip() else ""
    standing = report.trust.standing(case.nodeid)
    tag = f" ({text(standing.describe())})" if standing else ""
    compact = f"- {icon} {label} {code(case.nodeid)}{tag}{where}{message}"
    if case.longrepr.strip() in ("", case.message.strip()):
        return _Entry(compact)  # nothing to fold that the row does not say

    def full() -> str:
        summary = f"{icon} {label} {code(case.nodeid)}{tag}{message}"
        location = f"\n\nAt {code(f'{case.file}:{case.line}')}" if case.file else ""
        traceback = fenced(cut(plain(case.longrepr).strip("\n"), FOLDED_TRACEBACK_LIMIT))
        return f"<details><summary>{summary}</summary>{location}\n\n{traceback}\n\n</details>"

    return _Entry(compact, full)


def _stopped_workers(report: BuildReport) -> _Section:
    rows = [
        f"| {code(stopped.worker)} | {stopped.units} | {code(stopped.first_error)} |"
        for stopped in report.stopped_workers
    ]
    header = "| worker | units failed in a row | first error |\n|---|---:|---|"
    return _table("Stopped workers (circuit breaker)", header, rows, "stopped workers")


def _not_run(report: BuildReport) -> _Section:
    rows = [f"| {code(test.unit)} | {test.why(code)} |" for test in report.not_run]
    return _table("Not run", "| test | why |\n|---|---|", rows, "tests that did not run")


def _flaky(report: BuildReport) -> _Section:
    rows = []
    for history in report.flaky:
        first = history.earlier_failures[0].message
        rows.append(
            f"| {code(history.final.nodeid)} | {len(history.earlier_failures)} "
            f"| {code(first, ROW_MESSAGE_LIMIT) if first.strip() else ''} |"
        )
    header = "| test | failed attempts before it passed | first failure |\n|---|---:|---|"
    return _table("Flaky tests", header, rows, "flaky tests")


def _takeovers(report: BuildReport) -> _Section:
    finished_by = {history.unit: history.worker for history in report.cases}
    rows = [
        f"| {code(unit)} | {count} | "
        + (code(finished_by[unit]) if unit in finished_by else "not finished")
        + " |"
        for unit, count in sorted(report.takeovers.items())
    ]
    header = "| test | times its lease expired | finished by |\n|---|---:|---|"
    return _table("Taken over from lost workers", header, rows, "tests taken over")


def _slowest(report: BuildReport) -> str:
    timed = [history for history in report.cases if history.final.duration > 0]
    slowest = sorted(timed, key=lambda h: (-h.final.duration, h.final.nodeid))[:SLOWEST]
    if not slowest:
        return ""
    rows = [
        f"| {code(h.final.nodeid)} | {h.final.duration:.2f} | {h.final.outcome} "
        f"| {code(h.worker)} |"
        for h in slowest
    ]
    return "\n".join(
        [
            f"### Slowest tests (top {len(rows)})",
            "",
            "| test | seconds | outcome | worker |",
            "|---|---:|---|---|",
            *rows,
        ]
    )


def _utilization(usage: list[WorkerUsage]) -> str:
    if not usage:
        return ""
    rows = [
        f"| {code(u.worker)} | {u.tests_run} | {u.busy:.1f} | {u.idle:.1f} "
        f"| {u.busy_percent:.0f}% |"
        for u in usage
    ]
    busy = [u.busy for u in usage]
    balance = (
        f"Busiest worker {max(busy):.1f} s, least busy {min(busy):.1f} s over {len(usage)} workers."
    )
    return "\n".join(
        [
            "### Worker utilization",
            "",
            balance,
            "",
            "| worker | tests run | busy (s) | idle (s) | busy % |",
            "|---|---:|---:|---:|---:|",
            *rows,
        ]
    )
