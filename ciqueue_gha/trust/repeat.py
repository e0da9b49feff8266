"""`--repeat-new N`: each test the history has never seen runs N times, as N units, so a new
flaky test is caught before it is merged.

The extra runs are units of their own, ``<unit>@@repeat-<k>`` for k = 2..N, which the queue
treats as any other unit; the plugin runs the test of the unit they name (`RepeatedUnits`),
and the report counts the test once, with its runs (report/build.py). They are queued after
the whole suite, each round of repeats after the last, so the runs of one test lie a suite
apart and go to different workers where there are several.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import redis

from . import history

REPEAT = "@@repeat-"
V = TypeVar("V")


def repeat_unit(unit: str, run: int) -> str:
    """The unit of `unit`'s run number `run` (2 and up)."""
    return f"{unit}{REPEAT}{run}"


def base_unit(unit: str) -> str:
    """The unit a repeat stands for; any other unit itself."""
    base, mark, run = unit.rpartition(REPEAT)
    return base if mark and run.isdigit() else unit


def with_repeats(units: Sequence[str], new: Sequence[str], times: int) -> list[str]:
    """`units`, then the second run of each of `new`, then the third, ... up to `times`."""
    return [*units, *(repeat_unit(unit, run) for run in range(2, times + 1) for unit in new)]


def new_units(client: redis.Redis, namespace: str, build: str, units: Sequence[str]) -> list[str]:
    """The units of `units` the history has never seen (in a build other than `build`), none
    when it knows no test of them at all: a suite's first build is no place to repeat it."""
    seen = history.load(client, namespace, units, but=build)
    return [unit for unit in units if unit not in seen] if seen else []


def repeating(
    client: redis.Redis,
    namespace: str,
    build: str,
    times: int,
    order: Callable[[list[str]], list[str]],
) -> Callable[[list[str]], list[str]]:
    """`order`, followed by the repeats of the new units among those it orders."""

    def queued(units: list[str]) -> list[str]:
        ordered = order(units)
        return with_repeats(ordered, new_units(client, namespace, build, ordered), times)

    return queued


class RepeatedUnits(Mapping[str, V]):
    """`units` (unit -> its items), where a repeat's unit finds the items of the unit it
    repeats; iterating gives the units themselves."""

    def __init__(self, units: Mapping[str, V]) -> None:
        self._units = units

    def __getitem__(self, unit: str) -> V:
        if unit in self._units:
            return self._units[unit]
        base = base_unit(unit)
        if base == unit:
            raise KeyError(unit)
        return self._units[base]

    def __iter__(self) -> Iterator[str]:
        return iter(self._units)

    def __len__(self) -> int:
        return len(self._units)
