"""Rewrite the golden files from their inputs: ``python tests/golden/regenerate.py``.

Each folder under tests/golden/ is one case: ``input.json`` describes a build (its build
records, as Redis would hold them), and the expected output of each reporter sits beside
it: ``summary.md`` (the job summary), ``annotations.json`` (the check run's annotations)
and ``workflow-commands.txt`` (the fallback when the token cannot write checks).
Review the diff after regenerating: the golden files are what a user sees.

input.json:
    build, verdict_text (optional), path_prefix (optional), and records: a list of build
    attempts, oldest first, each with ``tests`` (the populated units), ``takeovers``,
    ``strays`` and ``attempts``: AttemptRecord fields (the unit as ``test``) plus
    ``disposition`` (final, requeued, stale); an attempt's outcome, longrepr, file and line
    default to its worst case's; and optionally ``trust``: ``today`` (YYYY-MM-DD), the lines
    of a ``quarantine`` file, and the flaky ``history`` before the build (test -> list of
    [build, unix time, outcome]), against which each failure is classified.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ciqueue_gha.github.workflow import WorkflowCommands, workflow_annotations
from ciqueue_gha.queue.record import Attempt, AttemptRecord, BuildRecord, CaseRecord
from ciqueue_gha.report.annotations import annotations_for
from ciqueue_gha.report.build import BuildReport
from ciqueue_gha.report.markdown import render_job_summary
from ciqueue_gha.trust.classify import Trust, classify
from ciqueue_gha.trust.history import TestOutcomes
from ciqueue_gha.trust.quarantine import Quarantine, parse_line

GOLDEN = Path(__file__).resolve().parent
OUTPUTS = ("summary.md", "annotations.json", "workflow-commands.txt")
_WORST_FIRST = ("error", "failed", "passed", "skipped")


def cases() -> list[Path]:
    """Every golden case folder."""
    return sorted(path.parent for path in GOLDEN.glob("*/input.json"))


def load_records(description: dict[str, Any]) -> list[BuildRecord]:
    leases = iter(range(1, 1_000_000))
    return [_record(record, leases) for record in description["records"]]


def _record(record: dict[str, Any], leases: Any) -> BuildRecord:
    history: dict[str, list[Attempt]] = {}
    results: dict[str, AttemptRecord] = {}
    for fields in record.get("attempts", []):
        fields = dict(fields)
        disposition = fields.pop("disposition")
        attempt = _attempt(fields, next(leases))
        history.setdefault(attempt.unit, []).append(Attempt(attempt, disposition))
        if disposition == "final":
            results[attempt.unit] = attempt
    return BuildRecord(
        populated=True,
        units=record["tests"],
        results=results,
        attempts=history,
        takeovers=record.get("takeovers", {}),
        strays=record.get("strays", {}),
    )


def _attempt(fields: dict[str, Any], lease: int) -> AttemptRecord:
    cases = [CaseRecord(**case) for case in fields.pop("cases")]
    fields["unit"] = fields.pop("test")  # input.json's name for the unit, kept as written
    shown = next((case for case in cases if case.failed), cases[0])
    fields.setdefault("lease", lease)
    fields.setdefault("duration", sum(case.duration for case in cases))
    fields.setdefault(
        "outcome", next(o for o in _WORST_FIRST if any(c.outcome == o for c in cases))
    )
    fields.setdefault("longrepr", shown.longrepr)
    fields.setdefault("file", shown.file)
    fields.setdefault("line", shown.line)
    return AttemptRecord(cases=cases, **fields)


def trust_of(report: BuildReport, trust: dict[str, Any]) -> Trust:
    """How each failure of `report` stands against an input's `trust` description."""
    lines = enumerate(trust.get("quarantine", []), 1)
    entries = [e for n, line in lines if (e := parse_line(line, f"quarantine.txt:{n}"))]
    quarantine = Quarantine(tuple(entries), dt.date.fromisoformat(trust["today"]))
    history = {
        test: TestOutcomes(test, tuple((b, t, o) for b, t, o in kept))
        for test, kept in trust.get("history", {}).items()
    }
    failing = [case.final.nodeid for case in report.failures]
    return classify(failing, quarantine, history, report.repeated_runs())


def render(case: Path) -> dict[str, str]:
    """The reporters' output for one case: file name -> text."""
    description = json.loads((case / "input.json").read_text(encoding="utf-8"))
    records = load_records(description)
    report = BuildReport.from_records(records)
    if "trust" in description:
        report.trust = trust_of(report, description["trust"])
    summary = render_job_summary(
        report,
        build=description["build"],
        verdict_text=description.get("verdict_text"),
    )
    annotations = annotations_for(report, path_prefix=description.get("path_prefix", ""))
    log = io.StringIO()
    workflow_annotations(annotations, WorkflowCommands(log, {}))
    return {
        "summary.md": summary,
        "annotations.json": json.dumps(
            [asdict(a) for a in annotations], indent=2, ensure_ascii=False
        )
        + "\n",
        "workflow-commands.txt": log.getvalue(),
    }


def main() -> int:
    for case in cases():
        for name, text in render(case).items():
            path = case / name
            old = path.read_text(encoding="utf-8") if path.exists() else None
            if old != text:
                path.write_text(text, encoding="utf-8", newline="")
                print(f"rewrote {path.relative_to(GOLDEN.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
