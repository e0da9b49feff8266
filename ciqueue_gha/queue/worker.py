"""A queue worker: populate, reserve, acknowledge, requeue, heartbeat, release.

The invariants the scripts keep (DESIGN.md §2), checked after every step by
tests/integration/test_queue_model.py:

1. A test is in exactly one of queued, running, finalized.
2. At most one live lease per test; lease ids only grow.
3. Only the current lease holder can move a test out of running.
4. Exhausted <=> populated and queue empty and running empty and finalized == total.
5. Nothing a stale worker does (heartbeat, acknowledge, requeue) changes another worker's lease.

Every write about a test carries the lease id it was granted under, and the script checks
it against the test's current lease inside Redis: that is what keeps a late worker from
disturbing the one that took its test over.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from .. import defaults
from ..connection import patient
from ..errors import UsageError
from ..protocol.keys import BuildKeys
from ..protocol.scripts import Reply, Scripts
from .record import AttemptRecord
from .settings import QueueSettings


@dataclass(frozen=True)
class Lease:
    """The right to run `unit`, as long as `id` is the unit's current lease."""

    unit: str
    id: int
    #: Redis's time when the lease was granted, seconds (0: not known); not part of identity.
    granted_at: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class Wait:
    """Nothing to hand out now, but tests are still running: ask again within `seconds`."""

    seconds: float


@dataclass(frozen=True)
class Done:
    """No more tests for this worker: the queue is `exhausted`, or `stopped` by max-failures."""

    reason: str


Reservation = Lease | Wait | Done


@dataclass(frozen=True)
class Window:
    """The leases one reserve call granted, in the order to run them (at least one)."""

    leases: tuple[Lease, ...]


#: What a reserve call for a window returns.
Grant = Window | Wait | Done


@dataclass(frozen=True)
class Population:
    leader: bool
    total: int
    matches: bool  # whether our collected tests are the populated ones


def digest(tests: Sequence[str]) -> str:
    """A fingerprint of a test set, independent of its order."""
    return hashlib.sha256("\n".join(sorted(tests)).encode()).hexdigest()


def parse_grant(reply: Sequence[Any]) -> Grant:
    """A reserve reply: ``lease, now, unit, id, unit, id, ...``, ``wait, ms`` or the end."""
    kind = reply[0]
    if kind == "lease":
        now = int(reply[1]) / 1000
        pairs = zip(reply[2::2], reply[3::2], strict=True)
        return Window(tuple(Lease(unit, int(lease), now) for unit, lease in pairs))
    if kind == "wait":
        return Wait(int(reply[1]) / 1000)
    return Done(kind)


def first_of(grant: Grant) -> Reservation:
    """A one-lease grant as a reservation."""
    return grant.leases[0] if isinstance(grant, Window) else grant


class QueueWorker:
    """One worker of one build: a thin, typed face over the scripts.

    Redis keeps the clock of every deadline; `sleep` (how the worker waits out a `Wait`) is
    injected so a test can make it shorter.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: BuildKeys,
        worker_id: str,
        settings: QueueSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not worker_id or any(c in worker_id for c in "\r\n"):
            raise UsageError(f"invalid worker id {worker_id!r}")
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self.settings = settings or QueueSettings()
        self.scripts = Scripts(client)
        self.total = 0
        # Numbers this worker's reserve calls: a retried call repeats its number, so the
        # script can tell a lost reply from a new request.
        self.reserve_seq = 0
        # Redis's clock minus this runner's, as of the last lease granted: `now()` dates
        # attempts on the build's one clock even when the runner's is off.
        self.clock_offset = 0.0
        self._sleep = sleep
        self._key_vector = keys.queue_keys()

    def _call(self, name: str, *args: Any) -> Any:
        return self.scripts.call(name, self._key_vector, list(args))

    def close(self, *, read_in_flight: bool = True) -> None:
        """Read any reply still in flight (unless Redis is known lost) and close this
        worker's connection."""
        self.scripts.close(read_in_flight=read_in_flight)

    def populate(
        self, tests: Sequence[str], *, allow_empty: bool = False, basis: int = 0
    ) -> Population:
        """Push `tests` if this worker is the first to get here (the leader); else follow.

        An empty list is an error, except for a retry whose earlier attempt left nothing to
        run again (`allow_empty`). `basis`: the attempt a retry queued from (queue/retry.py).
        """
        if not tests and not allow_empty:
            raise UsageError("no tests collected: there is nothing to queue")
        if len(set(tests)) != len(tests):
            raise UsageError("the test list names a test twice")
        ours = digest(tests)
        # Every script now: a call whose reply is read later would learn of a script the server
        # does not know only then, and populate's request is too large to send twice.
        self.scripts.load_all()
        tail = [*tests, basis]  # basis: after the tests (populate.lua's header)
        args = [self.worker_id, self.settings.key_ttl, ours, defaults.POPULATE_CHUNK, *tail]
        role, theirs, total = self._populate_call(args, len(tests))
        self.total = int(total)
        return Population(role == "leader", self.total, theirs == ours)

    def _populate_call(self, args: list[Any], tests: int) -> Any:
        """Populate's call. Its reply takes time in proportion to the suite: past what the
        usual socket timeout covers, on a client of its own that waits long enough (a slow
        reply is not a dead server)."""
        extra = tests * defaults.POPULATE_REPLY_PER_TEST
        keys = [*self._key_vector, self.keys.key("basis")]  # populate alone writes basis
        if extra < defaults.SOCKET_TIMEOUT:
            return self.scripts.call("populate", keys, args)
        client = patient(self.client, defaults.SOCKET_TIMEOUT + extra)
        scripts = Scripts(client)
        try:
            return scripts.call("populate", keys, args)
        finally:
            scripts.close()
            client.close()

    def _grant(self, reply: Sequence[Any], *, read_at_once: bool = True) -> Grant:
        """The grant in `reply`. Redis's clock is read off a reply read as it arrives; one
        read later (while a unit ran) may have waited any time since Redis sent it, and one
        sent earlier may have waited on the way (a slow link) before Redis saw it."""
        grant = parse_grant(reply)
        if isinstance(grant, Window) and read_at_once:
            self.clock_offset = grant.leases[0].granted_at - time.time()
        if grant == Done("stopped"):
            # Tell the supervisor, which cannot know --max-failures: it need not wait for the
            # units that will never be handed out.
            self.client.set(self.keys.key("stopped"), self.worker_id, ex=self.settings.key_ttl)
        return grant

    def now(self) -> float:
        """Redis's time as this worker best knows it (off by one reply's latency), seconds."""
        return time.time() + self.clock_offset

    def _next_seq(self) -> int:
        self.reserve_seq += 1
        return self.reserve_seq

    def reserve(self, *, retry: bool = False) -> Reservation:
        """Lease the next unit: an expired lease first, else the head of the queue.

        With `retry`, repeat the last call (as a client does whose reply was lost): the
        lease that call granted comes back, while it is still this worker's.
        """
        return first_of(self.reserve_window(1, retry=retry))

    def reserve_window(self, count: int, *, retry: bool = False, holding: int = 0) -> Grant:
        """Lease up to `count` units in one call (fewer near the end of the queue: reserve.lua's
        fair share, which counts the `holding` leases it holds and has not started); with `retry`,
        the leases of the last call still this worker's."""
        seq = self.reserve_seq if retry else self._next_seq()
        s = self.settings
        reply = self._call(
            "reserve",
            self.worker_id,
            seq,
            s.lease_timeout_ms,
            s.script_max_failures(),
            s.key_ttl,
            count,
            holding,
        )
        return self._grant(reply)

    def acknowledge(
        self, lease: Lease, record: AttemptRecord, *, reserve_next: bool = True
    ) -> tuple[str, Reservation | None]:
        """Record `record` as the attempt under `lease`; finalizes only if `lease` is current.

        Returns the disposition (``final`` or ``stale``) and, with `reserve_next`, the next
        reservation, in the same round trip.
        """
        return self._one([(lease, record)], reserve_next, requeue=False)

    def requeue(
        self, lease: Lease, record: AttemptRecord, *, reserve_next: bool = True
    ) -> tuple[str, Reservation | None]:
        """Put a failed unit back in the queue while under the caps, else finalize the failure.

        Returns ``requeued``, ``final`` or ``stale``, and the next reservation.
        """
        return self._one([(lease, record)], reserve_next, requeue=True)

    def _one(
        self, done: list[tuple[Lease, AttemptRecord]], reserve_next: bool, *, requeue: bool
    ) -> tuple[str, Reservation | None]:
        dispositions, grant = self.settle(done, 1 if reserve_next else 0, requeue=requeue).result(
            at_once=True
        )
        return dispositions[0], None if grant is None else first_of(grant)

    def acknowledge_later(self, lease: Lease, record: AttemptRecord) -> Batch:
        """`acknowledge` with the next reserve, sent now; the reply is read when asked for,
        so the worker can run its next unit meanwhile."""
        return self.settle([(lease, record)], 1, requeue=False)

    def settle(
        self,
        done: Sequence[tuple[Lease, AttemptRecord]],
        reserve: int,
        *,
        requeue: bool | None = None,
        holding: int = 0,
    ) -> Batch:
        """Send the attempts `done` (each under its lease) and, unless `reserve` is 0, a
        reserve of up to `reserve` units (the fair share counts the `holding` leases it holds
        and has not started): one call, its reply read when asked for. A failed attempt is
        requeued while under the caps when `requeue` says so (None: when this worker may
        requeue at all)."""
        s = self.settings
        caps = [s.max_requeues, s.build_requeue_cap(self.total), defaults.REQUEUE_OFFSET]
        args: list[Any] = [
            self.worker_id,
            s.key_ttl,
            s.lease_timeout_ms,
            s.script_max_failures(),
            self._next_seq() if reserve else 0,
            reserve,
            *caps,
            holding,
        ]
        may_requeue = self.may_requeue if requeue is None else requeue
        for lease, record in done:
            record.unit, record.lease, record.worker = lease.unit, lease.id, self.worker_id
            again = "1" if may_requeue and record.failed else "0"
            args += [lease.unit, lease.id, record.outcome, record.to_json(), again]
        reply = self.scripts.send("acknowledge", self._key_vector, args)
        return Batch(self, reply, len(done))

    def heartbeat(self, lease: Lease) -> bool:
        """Extend `lease`; False when it is no longer this worker's."""
        return self.heartbeat_all([lease])[0]

    def heartbeat_all(self, leases: Sequence[Lease]) -> list[bool]:
        """Extend every lease in `leases` still this worker's, in one call (and those of its
        latest grant); per lease, whether it was extended."""
        pairs = [part for lease in leases for part in (lease.unit, lease.id)]
        extended = self._call(
            "heartbeat",
            self.worker_id,
            self.settings.lease_timeout_ms,
            self.settings.key_ttl,
            *pairs,
        )
        return [bool(flag) for flag in extended]

    def give_back(self, leases: Sequence[Lease]) -> list[str]:
        """Put `leases` (held, not started) back at the head of the queue, those still this
        worker's; returns their units."""
        pairs = [part for lease in leases for part in (lease.unit, lease.id)]
        return list(self._call("give_back", self.worker_id, self.settings.key_ttl, *pairs))

    def release(self) -> list[str]:
        """On a clean shutdown: expire this worker's leases at once; returns the tests released."""
        return list(self.send_release().result() or [])

    def send_release(self) -> Reply:
        """`release`, its reply read when asked for."""
        return self.scripts.send("release", self._key_vector, [self.worker_id])

    def queued_units(self) -> list[str]:
        """The units populated for this attempt (the leader's collection), in queue order."""
        return list(self.client.lrange(self.keys.key("tests"), 0, -1))  # type: ignore[arg-type]

    def wait_for_lease(self, reservation: Reservation) -> Lease | None:
        """Turn `reservation` into a lease, waiting out `Wait`s; None once there are no more."""
        got = first_of(self.wait_for_window(reservation, 1))
        return got if isinstance(got, Lease) else None

    def wait_for_window(self, grant: Grant | Reservation, count: int) -> Grant:
        """Turn `grant` into a window (or the end), waiting out `Wait`s with reserves of up
        to `count` units."""
        if isinstance(grant, Lease):
            return Window((grant,))
        pause = defaults.WAIT_POLL_FIRST
        while isinstance(grant, Wait):
            pause = self.wait_out(grant, pause)
            grant = self.reserve_window(count)
        return grant

    def wait_out(self, wait: Wait, pause: float) -> float:
        """Sleep before asking again after `wait` (at most `pause`, the backoff's current
        step); returns the next step."""
        self._sleep(min(max(wait.seconds, defaults.WAIT_POLL_FIRST), pause))
        return min(2 * pause, defaults.WAIT_POLL_CAP)

    @property
    def may_requeue(self) -> bool:
        """Whether a failed test goes back to the queue rather than failing at once."""
        return self.settings.max_requeues > 0 and self.settings.build_requeue_cap(self.total) > 0


class Batch:
    """An acknowledge of attempts on its way: `result()` is their dispositions (``final``,
    ``stale`` or ``requeued``, in order) and the next grant, if one was asked for."""

    def __init__(self, worker: QueueWorker, reply: Reply, settled: int) -> None:
        self._worker = worker
        self._reply = reply
        self._settled = settled
        self._result: tuple[list[str], Grant | None] | None = None
        self.sent_at = time.perf_counter()

    def arrived(self) -> bool:
        """Whether `result()` would not wait for Redis."""
        return self._reply.arrived()

    def result(self, *, at_once: bool = False) -> tuple[list[str], Grant | None]:
        """The reply; `at_once` when asked for right after sending (see `_grant`)."""
        if self._result is None:
            reply = self._reply.result()
            rest = reply[self._settled :]
            grant = self._worker._grant(rest, read_at_once=at_once) if rest else None
            self._result = list(reply[: self._settled]), grant
        return self._result
