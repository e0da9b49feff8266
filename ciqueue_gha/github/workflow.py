"""Workflow commands, written so that no value can start a command of its own.

The runner reads every line of a step's log that starts with ``::`` as a command, and its
``GITHUB_OUTPUT`` / ``GITHUB_STEP_SUMMARY`` files as outputs and summary. Test names and
failure messages come from the code under test, so every value is escaped as the runner
unescapes it (github/log.py, which writes every line of the tool's to a runner's log): ``%``,
CR and LF in messages, those and ``:`` ``,`` in properties. A value therefore always stays on
its command's one line, and an output's value always ends at a delimiter it cannot contain.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TextIO

from ..report.annotations import Annotation
from .env import GitHubEnv
from .log import RunnerLog, escape_data, escape_property

__all__ = ["WorkflowCommands", "escape_data", "escape_property", "workflow_annotations"]

#: Output names the runner accepts and that cannot break the ``name<<delimiter`` line.
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

#: Error annotations the runner shows per step; workflow commands beyond it are not shown.
WORKFLOW_ANNOTATION_LIMIT = 10

_LEVEL_COMMANDS = {"failure": "error", "warning": "warning", "notice": "notice"}


class WorkflowCommands:
    """Writes workflow commands to `out` (the step's log) and appends to the files the runner
    names in `env` (``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``), read at each write.

    Outside GitHub Actions the commands are harmless log lines and the file methods do
    nothing (they return False), so callers need no "am I on a runner" test.
    """

    def __init__(self, out: TextIO | None = None, env: Mapping[str, str] = os.environ) -> None:
        self.log = RunnerLog(out, env)
        self._env = env

    def command(self, name: str, message: str = "", **properties: str | int | None) -> None:
        """Write ``::name key=value,…::message`` on one line; None properties are left out."""
        self.log.command(name, message, **properties)

    def annotate(
        self,
        level: str,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        end_line: int | None = None,
        title: str | None = None,
    ) -> None:
        """An annotation of `level` (error, warning, notice), on `file` at `line` when given."""
        self.command(level, message, file=file, line=line, endLine=end_line, title=title)

    def error(self, message: str) -> None:
        self.annotate("error", message)

    def warning(self, message: str) -> None:
        self.annotate("warning", message)

    def notice(self, message: str) -> None:
        self.annotate("notice", message)

    def add_mask(self, value: str) -> None:
        """Hide `value` in the rest of the job's log. The runner masks line by line, so a
        multi-line value is masked one line at a time; blank lines are not masked (that would
        mask nothing useful and every space)."""
        for line in value.splitlines():
            if line.strip():
                self.command("add-mask", line)

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        """Fold what is written inside the block under `title` in the log."""
        self.command("group", title)
        try:
            yield
        finally:
            self.command("endgroup")

    def set_output(self, name: str, value: str) -> bool:
        """Set the step output `name`; False (nothing written) outside a runner."""
        if not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"invalid output name {name!r}")
        delimiter = _delimiter(value)
        path = GitHubEnv.from_environ(self._env).output
        return _append(path, f"{name}<<{delimiter}\n{value}\n{delimiter}\n")

    def append_summary(self, markdown: str) -> bool:
        """Append `markdown` to the step's job summary; False (nothing written) outside a
        runner."""
        path = GitHubEnv.from_environ(self._env).step_summary
        return _append(path, markdown if markdown.endswith("\n") else markdown + "\n")


def _append(path: str, text: str) -> bool:
    """Append `text` to the runner's file at `path`; False when there is none."""
    if not path:
        return False
    # newline="" keeps LF as LF on Windows runners too: the runner reads either.
    with open(path, "a", encoding="utf-8", newline="") as file:
        file.write(text)
    return True


def _delimiter(value: str) -> str:
    """A heredoc delimiter that occurs nowhere in `value`."""
    while True:
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        if delimiter not in value:
            return delimiter


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
        commands.annotate(
            level,
            annotation.message,
            file=annotation.path,
            line=annotation.start_line,
            end_line=annotation.end_line,
            title=annotation.title,
        )
    if left_out:
        commands.annotate(
            "notice",
            f"{left_out} more failing tests are not annotated here (the runner shows "
            f"{limit} annotations of a kind per step); the job summary and the merged JUnit "
            "file list them all.",
            title="ciqueue-gha: more failures",
        )
    return sum(written.values())
