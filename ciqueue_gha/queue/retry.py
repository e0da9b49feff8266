"""Retries (GitHub "re-run"): what attempt N queues, and what its summary merges.

Attempt N > 1 queues the units that failed or never finished in the latest earlier attempt
that left something: its verdict (kept 30 days, queue/verdict.py), else its state (3 days),
whole and so are the attempts it was itself based on. Populate stores that attempt as N's
`basis` (0: the whole suite), so the summary of N merges exactly that chain and never reports
fewer tests than it was based on. An earlier attempt that is gone, or not whole, makes N run
the whole suite, and say so: a lost record must never shrink a retry into a green build.

An attempt that left no trace at all (a summary-only re-run populates nothing) is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from ..errors import QueueStateLost
from ..protocol.keys import BuildKeys
from .record import STRUCTURAL_KEYS, BuildRecord
from .verdict import AttemptVerdict

if TYPE_CHECKING:
    from .worker import Population, QueueWorker

#: Keys that show an attempt was populated, even when part of its state is gone.
_TRACE_KEYS = (*STRUCTURAL_KEYS, "tests", "results", "attempts", "queue", "running", "workers")


@dataclass(frozen=True)
class RetryPlan:
    """What attempt N queues: `units` (None: every collected unit) on top of attempt `basis`
    (0: none, the whole suite), and the line a worker says about it, if any."""

    units: set[str] | None
    basis: int
    notice: str | None = None

    def select(self, collected: Sequence[str]) -> list[str]:
        """The units of `collected` this attempt queues, in their order."""
        if self.units is None:
            return list(collected)
        return [unit for unit in collected if unit in self.units]


@dataclass(frozen=True)
class BuildHistory:
    """The records a summary merges, oldest first (the last is the attempt's own), and the
    verdict standing in for the earlier attempts whose records expired, if any."""

    records: list[BuildRecord]
    carried: AttemptVerdict | None = None


def has_trace(client: redis.Redis, keys: BuildKeys) -> bool:
    """Whether attempt `keys.attempt` was ever populated (and some of it is left)."""
    return bool(client.exists(*(keys.key(name) for name in _TRACE_KEYS)))


def left_state(client: redis.Redis, keys: BuildKeys) -> bool:
    """Whether attempt `keys.attempt` left anything to report: a queue, a verdict, or the
    collection record its workers write before they populate (an attempt its collection
    errors stopped queues nothing, and is reported: exit 2)."""
    others = (keys.key(name) for name in ("verdict", "interrupted", "collected"))
    return has_trace(client, keys) or bool(client.exists(*others))


def plan_retry(client: redis.Redis, keys: BuildKeys) -> RetryPlan:
    """What attempt `keys.attempt` queues (see the module's docstring)."""
    if keys.attempt == 1:
        return RetryPlan(None, 0)
    for attempt in range(keys.attempt - 1, 0, -1):
        earlier = BuildKeys(keys.build_id, attempt)
        verdict = AttemptVerdict.load(client, earlier)
        if verdict is not None:
            return RetryPlan(set(verdict.rerun), attempt)
        if not has_trace(client, earlier):
            continue  # never populated (a summary-only re-run), or wholly expired
        try:
            history = load_history(client, earlier)
        except QueueStateLost as exc:
            return RetryPlan(None, 0, f"{exc}; attempt {keys.attempt} queues the whole suite")
        merged = AttemptVerdict.of(attempt, 0, history.records, history.carried)
        return RetryPlan(set(merged.rerun), attempt)
    return RetryPlan(
        None,
        0,
        f"no state or verdict of an attempt before {keys.attempt} is left in Redis "
        f"(expired, evicted, or none queued): attempt {keys.attempt} queues the whole suite",
    )


def populate_attempt(
    worker: QueueWorker, collected: Sequence[str], say: Callable[[str], None]
) -> tuple[list[str], Population]:
    """Populate `worker`'s attempt with the units of `collected` it queues (all on attempt 1,
    those its retry plan names on attempt N > 1), saying the plan's notice first, if any.
    Returns the units offered and the population."""
    plan = plan_retry(worker.client, worker.keys)
    if plan.notice:
        say(plan.notice)
    offered = plan.select(collected)
    population = worker.populate(offered, allow_empty=plan.units is not None, basis=plan.basis)
    return offered, population


def load_history(client: redis.Redis, keys: BuildKeys, *, populated: bool = True) -> BuildHistory:
    """The records the summary of `keys.attempt` merges; `QueueStateLost` when the attempt,
    or an attempt it was based on, is not whole and left no verdict. With `populated` False
    (its collection errors stopped the build) an attempt nothing was queued for is whole."""
    record = BuildRecord.load(client, keys)
    if not populated and not has_trace(client, keys):
        return BuildHistory([record])
    why = record.lost()
    if why is not None:
        raise _lost(keys, why)
    basis = record.basis or 0
    if basis == 0:
        return BuildHistory([record])
    if basis >= keys.attempt:
        raise _lost(keys, f"its basis names attempt {basis}")
    earlier = _basis_history(client, BuildKeys(keys.build_id, basis), keys)
    return BuildHistory([*earlier.records, record], earlier.carried)


def _basis_history(client: redis.Redis, basis: BuildKeys, retry: BuildKeys) -> BuildHistory:
    """The history of the attempt `retry` was based on: its records where whole (they tell
    each test's story), else its verdict (the counts)."""
    try:
        return load_history(client, basis)
    except QueueStateLost as exc:
        verdict = AttemptVerdict.load(client, basis)
        if verdict is None:
            raise QueueStateLost(
                f"{exc}, and left no verdict (attempt {retry.attempt} was queued from it)"
            ) from None
        return BuildHistory([], verdict)


def latest_with_state(client: redis.Redis, keys: BuildKeys) -> int | None:
    """The latest attempt before `keys.attempt` that left state or a verdict, if any."""
    for attempt in range(keys.attempt - 1, 0, -1):
        earlier = BuildKeys(keys.build_id, attempt)
        if left_state(client, earlier):
            return attempt
    return None


def _lost(keys: BuildKeys, why: str) -> QueueStateLost:
    return QueueStateLost(f"build {keys.build_id} attempt {keys.attempt}: {why}: queue state lost")
