"""Every line ciqueue-gha writes to a log that a runner parses for workflow commands.

GitHub's runner reads a step's stdout and stderr line by line (a line ends at LF, CR or CRLF)
and runs as a command each line that, leading whitespace trimmed, starts with
``::name ...::``, or that holds ``##[name ...]`` anywhere (the older syntax). Test ids,
messages, tracebacks and captured output come from the code under test, so none of it may
reach such a log as it is. Two ways out, both here:

- the tool's own commands (`RunnerLog.command`): the message and properties escaped as the
  runner unescapes them, so a value always stays inside its one command;
- text from the code under test (`RunnerLog.text`, `RunnerLog.verbatim`): where a line of it
  could be read as a command, it goes out between ``::stop-commands::<token>`` and
  ``::<token>::``, with a fresh random token per block: the runner ignores every command in
  between, and no test can know the token that ends the block. The runner reads stdout and
  stderr apart (it may run a line of stderr before an earlier one of stdout), so two blocks
  on the two streams could interleave and one end the other's: every block goes to stdout,
  and stderr never holds a line that could be a command.

Outside a runner (``GITHUB_ACTIONS`` is not ``true``) text is printed plain.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TextIO

from .env import GitHubEnv

#: What the runner reads as the start of a command: ``::`` after leading whitespace, or
#: the older ``##[`` anywhere in a line.
_COMMAND_LIKE = re.compile(r"^\s*::|##\[", re.MULTILINE)

#: How the runner splits its input into lines (.NET's ReadLine).
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def escape_data(value: str) -> str:
    """`value` as a command's message: ``%``, CR and LF escaped, as the runner unescapes them
    (``%`` first, so an escape already in `value` is not undone)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """`value` as a command's property (``file=``, ``title=``): also ``:`` and ``,``, which
    would end the property list or the property."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def format_command(name: str, message: str = "", **properties: str | int | None) -> str:
    """``::name key=value,...::message`` (no line end); None properties are left out."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def could_be_command(text: str) -> bool:
    """Whether the runner could read a line of `text` as a workflow command."""
    return bool(_COMMAND_LIKE.search("\n".join(_LINE_BREAKS.split(text))))


class RunnerLog:
    """Writes to one stream of a step's log: `stream`, else stdout (stderr with `err`), looked
    up at each write, since pytest and click swap ``sys.stdout``."""

    def __init__(
        self,
        stream: TextIO | None = None,
        env: Mapping[str, str] = os.environ,
        *,
        err: bool = False,
    ) -> None:
        self._stream = stream
        self._env = env
        self._err = err
        self._open_token: str | None = None  # the token of the block `verbatim` holds open

    @property
    def out(self) -> TextIO:
        if self._stream is not None:
            return self._stream
        return sys.stderr if self._err else sys.stdout

    @property
    def parsed(self) -> bool:
        """Whether a runner reads this log for commands."""
        return GitHubEnv.from_environ(self._env).runner

    def command(self, name: str, message: str = "", **properties: str | int | None) -> None:
        """One of the tool's own commands; inside a `verbatim` block, the block is ended
        for it and a new one begun after it."""
        token = self._open_token
        if token is not None:
            self._write(f"\n::{token}::\n")
        self._write(format_command(name, message, **properties) + "\n")
        if token is not None:
            self._open_token = self._stop()
            _Guard.current.hold(self._open_token)

    def text(self, text: str) -> None:
        """`text` from the code under test (a report, a log tail), as it is to the reader and
        never a command to the runner."""
        body = text if text.endswith("\n") else text + "\n"
        if not self.parsed or self._open_token is not None or not could_be_command(body):
            self._write(body)
            return
        block = RunnerLog(self._stream or sys.stdout, self._env)  # on stdout (see above)
        token = block._stop()
        block._write(body + f"::{token}::\n")

    @contextmanager
    def verbatim(self) -> Iterator[None]:
        """A block around whatever this process writes meanwhile (a pytest session, which
        writes to both streams and to the file descriptors): under a runner, the runner runs
        none of it. Meanwhile stderr goes to this log's stream, so that the block holds it
        too. The block ends on a line of its own, whatever the last write left unfinished."""
        if not self.parsed or self._open_token is not None:
            yield
            return
        self._open_token = self._stop()
        guard = _Guard.start(self.out)
        guard.hold(self._open_token)
        try:
            with _joined(self.out):
                yield
        finally:
            token, self._open_token = self._open_token, None
            self._write(f"\n::{token}::\n")
            guard.release()

    def _stop(self) -> str:
        token = secrets.token_hex(16)
        self._write(f"::stop-commands::{token}\n")
        return token

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


#: What a `_Guard` runs: reads the open block's token, one a line, until its pipe closes,
#: and ends the block unless the last line said it was ended.
_GUARD_CODE = """
import os, sys
lines = sys.stdin.buffer.read().decode().splitlines() or ["ended"]
if lines[-1] != "ended":
    os.write(1, ("\\n::" + lines[-1] + "::\\n").encode())
"""


class _Guard:
    """A process that ends a `verbatim` block if the process holding it dies inside it (a
    test that segfaults, or calls ``os._exit``): a block left open stops every command of the
    job's later steps, their masks (``::add-mask::``) included. It writes to the same log,
    and learns the token over a pipe only this process holds, so it sees the pipe close when
    this process ends, however it ends."""

    current: _Guard

    def __init__(self, process: subprocess.Popen[bytes] | None) -> None:
        self.process = process

    @classmethod
    def start(cls, stream: TextIO) -> _Guard:
        try:
            out = stream.fileno()
        except (AttributeError, OSError, ValueError):
            out = -1
        process = None
        if out >= 0:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _GUARD_CODE],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
        cls.current = cls(process)
        return cls.current

    def hold(self, token: str) -> None:
        self._send(token)

    def release(self) -> None:
        """The block was ended as it should: the guard leaves without a word."""
        self._send("ended")
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)

    def _send(self, line: str) -> None:
        if self.process is not None and self.process.stdin is not None:
            with suppress(OSError):  # the guard gone: nothing to tell
                self.process.stdin.write(f"{line}\n".encode())
                self.process.stdin.flush()


_Guard.current = _Guard(None)


@contextmanager
def _joined(stream: TextIO) -> Iterator[None]:
    """Point file descriptors 1 and 2 both at `stream`'s, and back afterwards (flushing
    Python's buffers both times, so that nothing written before lands after, or after
    before). A stream without a descriptor (a test's StringIO) is left as it is."""
    try:
        target = stream.fileno()
    except (AttributeError, OSError, ValueError):
        target = -1
    if target not in (1, 2):
        yield
        return
    other = 2 if target == 1 else 1
    _flush()
    saved = os.dup(other)
    os.dup2(target, other)
    try:
        yield
    finally:
        _flush()
        os.dup2(saved, other)
        os.close(saved)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # closed by the code it ran
            stream.flush()
