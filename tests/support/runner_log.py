"""A step's log read as GitHub's runner reads it for workflow commands (actions/runner,
ActionCommandManager and ActionCommand), so a test can tell which commands a log would run.

- The runner reads the log line by line; a line ends at LF, CR or CRLF (.NET ``ReadLine``).
- A line is a command when, leading whitespace trimmed, it starts ``::name props::data``
  (``TryParseV2``), or when it holds ``##[name props]data`` anywhere (``TryParse``, the older
  syntax), and `name` is a registered command.
- ``stop-commands`` with data T stops every command until one named T (``::T::`` or
  ``##[T]``), which resumes them; in between nothing else is run.
- Properties are split at ``,`` (``;`` in the older syntax) and ``=``, then unescaped; data
  is unescaped (``%0D``, ``%0A``, ``%25``; the older syntax also ``%3B`` and ``%5D``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: The runner's registered commands (its command extensions and stop-commands).
REGISTERED = frozenset(
    {
        "add-mask",
        "add-matcher",
        "add-path",
        "debug",
        "echo",
        "endgroup",
        "error",
        "group",
        "notice",
        "remove-matcher",
        "save-state",
        "set-env",
        "set-output",
        "stop-commands",
        "warning",
    }
)

_LINES = re.compile(r"\r\n|\r|\n")
_DATA = (("%0D", "\r"), ("%0A", "\n"), ("%25", "%"))
_PROPERTY = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))
_OLD = (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]"), ("%25", "%"))


@dataclass(frozen=True)
class Command:
    """A command the runner runs: its name (as written), properties and data, unescaped."""

    name: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""
    line: int = 0  # 1-based, in the runner's lines


def lines(log: str) -> list[str]:
    """`log` split into lines as the runner splits its input."""
    parts = _LINES.split(log)
    return parts[:-1] if parts and parts[-1] == "" else parts


def _unescape(text: str, mapping: tuple[tuple[str, str], ...]) -> str:
    for escaped, raw in mapping:
        text = text.replace(escaped, raw)
    return text


def _parse_v2(line: str, registered: set[str]) -> Command | None:
    line = line.lstrip()
    if not line.startswith("::"):
        return None
    end = line.find("::", 2)
    if end < 0:
        return None
    info = line[2:end]
    name, _, props = info.partition(" ")
    if not name or name.lower() not in registered:
        return None
    properties = {}
    for pair in props.strip().split(","):
        key, equals, value = pair.partition("=")
        if pair and key and equals and value:
            properties[key] = _unescape(value, _PROPERTY)
    return Command(name, properties, _unescape(line[end + 2 :], _DATA))


def _parse_v1(line: str, registered: set[str]) -> Command | None:
    start = line.find("##[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    name, _, props = line[start + 3 : end].partition(" ")
    if not name or name.lower() not in registered:
        return None
    properties = {}
    for pair in props.split(";"):
        key, equals, value = pair.partition("=")
        if pair and key and equals and value:
            properties[key] = _unescape(value, _OLD)
    return Command(name, properties, _unescape(line[end + 1 :], _OLD))


def commands(log: str) -> list[Command]:
    """Every command the runner would run reading `log`, stop-commands and the resuming
    token included (as commands named ``stop-commands`` and the token)."""
    registered = {name.lower() for name in REGISTERED}
    token: str | None = None
    found = []
    for number, text in enumerate(lines(log), 1):
        command = _parse_v2(text, registered) or _parse_v1(text, registered)
        if command is None:
            continue
        command = Command(command.name, command.properties, command.data, number)
        if token is not None:
            if command.name.lower() == token.lower():
                registered.discard(token.lower())
                token = None
                found.append(command)
            continue
        if command.name.lower() == "stop-commands":
            token = command.data
            registered.add(token.lower())
        found.append(command)
    return found


def without_blocks(found: list[Command]) -> list[Command]:
    """`found` without the stop-commands markers (each stop and the token resuming it)."""
    tokens = {c.data.lower() for c in found if c.name.lower() == "stop-commands"}
    return [c for c in found if c.name.lower() != "stop-commands" and c.name.lower() not in tokens]


def open_block(found: list[Command]) -> str | None:
    """The token of a stop-commands block left open at the end of the log, if any."""
    token: str | None = None
    for command in found:
        if command.name.lower() == "stop-commands":
            token = command.data
        elif token is not None and command.name.lower() == token.lower():
            token = None
    return token
