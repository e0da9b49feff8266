"""Annotations: one per failing test, at the line where it failed, for the check run or,
where the token cannot write checks, as workflow commands.

Decisions:
- Every failed or errored test case gets exactly one annotation, level "failure" (a
  quarantined one "warning": it does not fail the build), titled with its node id, its
  standing (new, known flaky...) leading the message. It sits at the failing frame inside
  the repository that the worker recorded (``CaseRecord.file``/``line``). An error with no
  location (the worker died, or did not collect the test) sits at line 1 of the test's file,
  taken from its node id, so it still shows on the pull request's files.
- Units that never ran (lost, or collected by one worker only) get no annotation: nothing
  in the code failed and there is no line to point at; the job summary, the check run's
  summary and the merged JUnit list them, and the build's conclusion says incomplete.
- Flaky tests get none either: they passed; the job summary lists them.
- The message is the failure message and the traceback cut to its head and tail (the
  test's source and the assertion), well inside the API's 64 KB; the captured output,
  if any, goes to ``raw_details``.

The check run (github/checks.py) and the workflow commands (github/workflow.py) send them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..truncate import DETAILS_LIMIT, FAILURE_TEXT_LIMIT, TITLE_LIMIT, cut
from .build import BuildReport, CaseHistory
from .plain import one_line, plain


@dataclass(frozen=True)
class Annotation:
    """One annotation: a message at lines of a file, as the checks API takes it."""

    path: str  # relative to the repository root
    start_line: int  # 1-based
    end_line: int
    annotation_level: str  # "failure" | "warning" | "notice"
    message: str
    title: str | None = None
    raw_details: str | None = None


def annotations_for(build: BuildReport, *, path_prefix: str = "") -> list[Annotation]:
    """One "failure" annotation per failed or errored test, in the report's order.

    `path_prefix` is where the recorded paths start within the repository, for a suite
    whose report paths are not already relative to the repository root."""
    return [_annotation(build, history, path_prefix) for history in build.failures]


def _annotation(build: BuildReport, history: CaseHistory, path_prefix: str) -> Annotation:
    case = history.final
    standing = build.trust.standing(case.nodeid)
    path = case.file or case.nodeid.split("::", 1)[0]
    line = case.line if case.file and case.line > 0 else 1
    message = (
        cut(plain(case.message).strip(), FAILURE_TEXT_LIMIT) or f"{case.outcome}: {case.nodeid}"
    )
    if case.outcome == "error":
        message = f"ERROR: {message}"
    traceback = plain(case.longrepr).strip("\n")
    if traceback.strip() not in ("", plain(case.message).strip()):
        message += "\n\n" + cut(traceback, FAILURE_TEXT_LIMIT)
    if standing is not None:
        message = f"[{standing.describe()}] {message}"
    output = plain(case.output).strip("\n")
    return Annotation(
        path=_repository_path(path_prefix, path),
        start_line=line,
        end_line=line,
        annotation_level="warning" if build.trust.excused(case.nodeid) else "failure",
        message=message,
        title=one_line(case.nodeid, TITLE_LIMIT),
        raw_details=cut(output, DETAILS_LIMIT) if output else None,
    )


def _repository_path(prefix: str, path: str) -> str:
    parts = [p for p in f"{prefix}/{path}".replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)
