"""Annotations: one per failing test, at the line where it failed, for the check run or,
where the token cannot write checks, as workflow commands.

Decisions:
- Every failed or errored test case gets exactly one annotation, level "failure", titled
  with its node id. It sits at the failing frame inside the repository that the worker
  recorded (``CaseRecord.file``/``line``). An error with no location (the worker died, or
  did not collect the test) sits at line 1 of the test's file, taken from its node id, so
  it still shows on the pull request's files.
- Units that never ran (lost, or collected by one worker only) get no annotation: nothing
  in the code failed and there is no line to point at; the job summary, the check run's
  summary and the merged JUnit list them, and the build's conclusion says incomplete.
- Flaky tests get none either: they passed; the job summary lists them.
- The message is the failure message and the traceback cut to its head and tail (the
  test's source and the assertion), well inside the API's 64 KB; the captured output,
  if any, goes to ``raw_details``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..github.checks import Annotation
from ..github.workflow import WorkflowCommands
from ..truncate import cut
from .outcome import BuildOutcome, CaseHistory
from .plain import one_line, plain

#: The API's limit on an annotation's title, in characters.
TITLE_LIMIT = 255
#: Characters of the failure message and of the traceback in an annotation's message.
#: Even at 4 bytes a character both stay well under the API's 64 KB.
MESSAGE_LIMIT = 4000
TRACEBACK_LIMIT = 4000
#: Characters of captured output in ``raw_details`` (64 KB at most in the API).
DETAILS_LIMIT = 16000
#: Error annotations the runner shows per step; workflow commands beyond it are not shown.
WORKFLOW_ANNOTATION_LIMIT = 10

_LEVEL_COMMANDS = {"failure": "error", "warning": "warning", "notice": "notice"}


def annotations_for(outcome: BuildOutcome, *, path_prefix: str = "") -> list[Annotation]:
    """One "failure" annotation per failed or errored test, in the outcome's order.

    `path_prefix` is where the recorded paths start within the repository, for a suite
    whose report paths are not already relative to the repository root."""
    return [_annotation(history, path_prefix) for history in outcome.failures]


def _annotation(history: CaseHistory, path_prefix: str) -> Annotation:
    case = history.final
    path = case.file or case.nodeid.split("::", 1)[0]
    line = case.line if case.file and case.line > 0 else 1
    message = cut(plain(case.message).strip(), MESSAGE_LIMIT) or f"{case.outcome}: {case.nodeid}"
    if case.outcome == "error":
        message = f"ERROR: {message}"
    traceback = plain(case.longrepr).strip("\n")
    if traceback.strip() not in ("", plain(case.message).strip()):
        message += "\n\n" + cut(traceback, TRACEBACK_LIMIT)
    output = plain(case.output).strip("\n")
    return Annotation(
        path=_repository_path(path_prefix, path),
        start_line=line,
        end_line=line,
        annotation_level="failure",
        message=message,
        title=one_line(case.nodeid, TITLE_LIMIT),
        raw_details=cut(output, DETAILS_LIMIT) if output else None,
    )


def _repository_path(prefix: str, path: str) -> str:
    parts = [p for p in f"{prefix}/{path}".replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def workflow_annotations(
    annotations: Sequence[Annotation],
    commands: WorkflowCommands,
    *,
    limit: int = WORKFLOW_ANNOTATION_LIMIT,
) -> int:
    """The fallback when the token cannot write checks: one ``::error`` (``::warning``,
    ``::notice``) command per annotation, at most `limit` of each level; returns how many
    were written.

    The runner shows only the first 10 annotations of each level per step, and each
    command is a log line carrying a traceback, so writing the rest would flood the log to
    show nothing more: one notice says how many were left out and where they are."""
    written: dict[str, int] = {}
    left_out = 0
    for annotation in annotations:
        level = _LEVEL_COMMANDS.get(annotation.annotation_level, "error")
        if written.get(level, 0) >= limit:
            left_out += 1
            continue
        written[level] = written.get(level, 0) + 1
        commands.command(
            level,
            annotation.message,
            file=annotation.path,
            line=annotation.start_line,
            endLine=annotation.end_line,
            title=annotation.title,
        )
    if left_out:
        commands.notice(
            f"{left_out} more failing tests are not annotated here (the runner shows "
            f"{limit} annotations of a kind per step); the job summary and the merged JUnit "
            "file list them all.",
            title="ciqueue-gha: more failures",
        )
    return sum(written.values())
