"""The summary as plain text, for the log of the job that runs `summary` or `run`.

It holds the tests' own words (ids, messages, tracebacks), so it is printed through
github/log.py, which keeps a runner from reading any of it as a command."""

from __future__ import annotations

from ..protocol.keys import BuildKeys
from ..queue.supervisor import Verdict
from ..truncate import cut
from .outcome import BuildOutcome, interrupted_line

#: Characters of one failure's traceback printed in the log.
TRACEBACK_LIMIT = 4000


def render_text(outcome: BuildOutcome, keys: BuildKeys, verdict: Verdict) -> str:
    lines = [
        f"ciqueue-gha: build {keys.build_id} attempt {keys.attempt}: "
        f"{len(outcome.cases)} tests, {outcome.count('passed')} passed, "
        f"{outcome.count('failed')} failed, {outcome.count('error')} errors, "
        f"{outcome.count('skipped')} skipped, {len(outcome.flaky)} flaky"
        + (
            f", {len(outcome.missing) + len(outcome.strays)} NOT RUN"
            if outcome.missing or outcome.strays
            else ""
        )
    ]
    for history in outcome.failures:
        case = history.final
        label = "ERROR" if case.outcome == "error" else "FAILED"
        where = f" ({case.file}:{case.line})" if case.file else ""
        lines.append(f"{label} {case.nodeid}{where} - {case.message}")
        lines.extend("    " + line for line in cut(case.longrepr, TRACEBACK_LIMIT).splitlines())
    lines.extend(
        f"FLAKY {h.final.nodeid}: failed {len(h.earlier_failures)}x, then passed"
        for h in outcome.flaky
    )
    not_run = set(outcome.missing)  # one thing said of each test: those are NOT RUN only
    lines.extend(
        f"TAKEN OVER {unit}: its lease expired {count}x and another worker ran it"
        for unit, count in sorted(outcome.taken_over.items())
        if unit not in not_run
    )
    if outcome.interrupted or verdict is Verdict.INTERRUPTED:
        lines.append(f"ciqueue-gha: {interrupted_line(outcome.collection_errors)}")
    elif verdict is Verdict.STOPPED:
        after = "; these tests did not run:" if outcome.missing else ""
        lines.append(
            f"ciqueue-gha: {verdict.value} (or -x / --maxfail in the pytest command line){after}"
        )
    elif verdict is not Verdict.EXHAUSTED:
        lines.append(f"ciqueue-gha: gave up waiting ({verdict.value}); these tests did not run:")
    lines.extend(f"NOT RUN {unit}" for unit in outcome.missing)
    lines.extend(
        f"NOT RUN {test}: collected by {worker} only, never queued (workers collected "
        "different test sets)"
        for test, worker in sorted(outcome.strays.items())
    )
    return "\n".join(lines)
