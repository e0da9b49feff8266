"""The static fallback's split of a suite over N workers, the same on every worker.

With recorded durations, the units are dealt longest first, each to the worker with the
least expected work so far (ties: the lowest index), and every worker runs its share longest
first. With none, whole files are dealt (the files with most units first), so module fixtures
stay on one worker, and each share runs in collection order. Ties always fall back to
collection order, so the same collection and durations give every worker the same split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..durations import expected


def file_of(unit: str) -> str:
    return unit.split("::", 1)[0]


def split(units: Sequence[str], durations: Mapping[str, float], total: int) -> list[list[str]]:
    """`units` dealt over `total` workers: one list per worker index, in its run order."""
    seconds = expected(list(units), durations)
    if seconds:
        return _deal(list(units), lambda unit: seconds[unit], total)
    files: dict[str, list[str]] = {}
    for unit in units:
        files.setdefault(file_of(unit), []).append(unit)
    dealt = _deal(list(files), lambda file: float(len(files[file])), total)
    order = {unit: index for index, unit in enumerate(units)}
    return [sorted((u for f in share for u in files[f]), key=order.__getitem__) for share in dealt]


def _deal(items: list[str], weigh: Callable[[str], float], total: int) -> list[list[str]]:
    """Longest-processing-time first: the heaviest item to the least loaded worker."""
    position = {item: index for index, item in enumerate(items)}
    ordered = sorted(items, key=lambda item: (-weigh(item), position[item]))
    shares: list[list[str]] = [[] for _ in range(total)]
    loads = [0.0] * total
    for item in ordered:
        worker = min(range(total), key=lambda index: (loads[index], index))
        shares[worker].append(item)
        loads[worker] += weigh(item)
    return shares


def share_of(
    units: Sequence[str], durations: Mapping[str, float], index: int, total: int
) -> list[str]:
    """Worker `index`'s share of `units` (of `total` workers), in its run order."""
    return split(units, durations, total)[index]
