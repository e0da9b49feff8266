"""Quarantine: tests known to be flaky, which still run, are reported apart, and never fail
the build while their entry holds.

One entry a line, in a file (``--quarantine FILE``) or kept in Redis per repository
(``ciqueue-gha quarantine add``)::

    tests/test_x.py::test_y                      # a test id
    tests/test_net.py::*  until 2027-01-31  # the network is flaky on CI
    tests/slow/*.py                              # a glob; a file path takes its tests

A pattern matches a test id when it is that id, when it names the test's file (or a class or
function above it: ``tests/test_x.py`` takes ``tests/test_x.py::test_y[1]``), or as a shell
glob (`fnmatch`: ``*``, ``?``, ``[...]``) of the id or of its file. ``until YYYY-MM-DD``
(UTC, the day included) ends the entry: after it, it no longer applies and is reported as
expired. A reason follows ``#`` after a space. Blank lines and lines starting with ``#`` are
skipped.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import redis

from ..cluster import keyed
from ..errors import UsageError
from ..protocol.keys import quarantine_key
from ..truncate import shown

#: The Redis-kept list lives this long after its last change or the last build reading it.
QUARANTINE_TTL = 365 * 24 * 3600

SYNTAX = "TEST-ID-OR-GLOB [until YYYY-MM-DD] [# reason]"

# The reason starts at the first '#' after whitespace: a test id may hold a '#' itself.
_COMMENT = re.compile(r"(?:^|\s)#(.*)$")


@dataclass(frozen=True)
class Entry:
    """One quarantined pattern, until a day (inclusive) or for good, and why."""

    pattern: str
    until: dt.date | None = None
    reason: str = ""
    source: str = ""  # where it was read: "FILE:LINE", or "redis"

    def expired(self, today: dt.date) -> bool:
        return self.until is not None and today > self.until

    def matches(self, test: str) -> bool:
        if test == self.pattern or test.startswith(self.pattern + "::"):
            return True
        glob = self._glob
        return glob.match(test) is not None or glob.match(test.split("::", 1)[0]) is not None

    @cached_property
    def _glob(self) -> re.Pattern[str]:
        return re.compile(fnmatch.translate(self.pattern))

    def line(self) -> str:
        """The entry as a line of a quarantine file."""
        until = f"  until {self.until.isoformat()}" if self.until else ""
        reason = f"  # {self.reason}" if self.reason else ""
        return f"{self.pattern}{until}{reason}"


def parse_line(text: str, source: str = "") -> Entry | None:
    """The entry a line holds, None for a blank or comment line; `ValueError` saying what is
    wrong with a malformed one."""
    body = text.strip()
    if not body or body.startswith("#"):
        return None
    reason = ""
    comment = _COMMENT.search(body)
    if comment:
        reason, body = comment.group(1).strip(), body[: comment.start()].strip()
    words = body.split()
    if len(words) == 1:
        return Entry(words[0], None, reason, source)
    if len(words) != 3 or words[1] != "until":
        raise ValueError(f"expected {SYNTAX}, got {shown(text.strip())}")
    return Entry(words[0], parse_date(words[2]), reason, source)


def parse_date(text: str) -> dt.date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{shown(text)} is not a date: use YYYY-MM-DD") from None


def read_file(path: Path) -> list[Entry]:
    """The entries of a quarantine file; `UsageError` naming the file and line of the first
    malformed line (exit 2)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"--quarantine {path}: {reason}") from None
    entries = []
    for number, text in enumerate(lines, 1):
        try:
            entry = parse_line(text, f"{path}:{number}")
        except ValueError as exc:
            raise UsageError(f"--quarantine {path}:{number}: {exc}") from None
        if entry is not None:
            entries.append(entry)
    return entries


@dataclass(frozen=True)
class Quarantine:
    """Every entry in force for a build (file and Redis), and the day it is judged on."""

    entries: tuple[Entry, ...]
    today: dt.date

    def holding(self, test: str) -> Entry | None:
        """The entry that quarantines `test` today, None if none does."""
        return next(
            (e for e in self.entries if not e.expired(self.today) and e.matches(test)), None
        )

    def expired_for(self, test: str) -> Entry | None:
        """An expired entry that would have quarantined `test`."""
        return next((e for e in self.entries if e.expired(self.today) and e.matches(test)), None)

    @property
    def expired(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.expired(self.today)]


def in_force(
    client: redis.Redis, namespace: str, path: Path | None, read: Sequence[Entry] = ()
) -> Quarantine:
    """The entries of the file at `path` (or those `read` from it already) and those Redis
    keeps for `namespace`, judged on Redis's today."""
    entries = (*(read_file(path) if path else read), *load_redis(client, namespace))
    return Quarantine(entries, redis_today(client))


def redis_today(client: redis.Redis) -> dt.date:
    """Today in UTC by Redis's clock (runners' clocks disagree, Redis's does not)."""
    seconds, _ = client.time()
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc).date()


def load_redis(client: redis.Redis, namespace: str) -> list[Entry]:
    """The entries kept for `namespace`, by pattern; each read refreshes their lifetime."""
    key = quarantine_key(namespace)
    client = keyed(client, key)  # a slot of its own on a cluster
    raw: Mapping[str, str] = client.hgetall(key)  # type: ignore[assignment]
    if raw:
        client.expire(key, QUARANTINE_TTL)
    return [_from_json(pattern, raw[pattern]) for pattern in sorted(raw)]


def _from_json(pattern: str, text: str) -> Entry:
    fields = json.loads(text)
    until = dt.date.fromisoformat(fields["until"]) if fields.get("until") else None
    return Entry(pattern, until, fields.get("reason", ""), "redis")


def add_redis(client: redis.Redis, namespace: str, entries: Iterable[Entry]) -> None:
    key = quarantine_key(namespace)
    pipe = keyed(client, key).pipeline(transaction=False)
    for entry in entries:
        until = entry.until.isoformat() if entry.until else None
        pipe.hset(key, entry.pattern, json.dumps({"until": until, "reason": entry.reason}))
    pipe.expire(key, QUARANTINE_TTL)
    pipe.execute()


def remove_redis(client: redis.Redis, namespace: str, patterns: Iterable[str]) -> int:
    """Remove `patterns`; how many were there."""
    key = quarantine_key(namespace)
    return int(keyed(client, key).hdel(key, *patterns))
