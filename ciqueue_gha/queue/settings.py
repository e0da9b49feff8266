"""The knobs of the queue that every worker of a build passes to the scripts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import defaults
from ..errors import UsageError


@dataclass(frozen=True)
class QueueSettings:
    """Lease timing, requeue caps, the failure cap and the circuit breaker of one worker.

    `heartbeat_interval` and `max_test_duration` default to fractions and multiples of
    `lease_timeout` (DESIGN.md §1).
    """

    lease_timeout: float = defaults.LEASE_TIMEOUT
    heartbeat_interval: float | None = None
    max_test_duration: float | None = None
    max_requeues: int = 0
    requeue_tolerance: float = 0.0
    max_failures: int | None = None
    max_consecutive_failures: int = defaults.MAX_CONSECUTIVE_FAILURES
    key_ttl: int = defaults.KEY_TTL

    def __post_init__(self) -> None:
        if not self.lease_timeout > 0:
            raise UsageError(f"--lease-timeout must be positive, not {self.lease_timeout}")
        if self.heartbeat_interval is not None and not (
            0 < self.heartbeat_interval < self.lease_timeout
        ):
            raise UsageError("--heartbeat-interval must be positive and below --lease-timeout")
        if self.max_test_duration is not None and not self.max_test_duration > 0:
            raise UsageError("--max-test-duration must be positive")
        if self.max_requeues < 0 or not 0 <= self.requeue_tolerance <= 1:
            raise UsageError("--max-requeues must be >= 0 and --requeue-tolerance within [0, 1]")
        if self.max_failures is not None and self.max_failures < 1:
            raise UsageError("--max-failures must be at least 1")
        if self.max_consecutive_failures < 0:
            raise UsageError("--max-consecutive-failures must be >= 0 (0: off)")

    @property
    def heartbeat_every(self) -> float:
        return self.heartbeat_interval or self.lease_timeout / defaults.HEARTBEATS_PER_LEASE

    @property
    def heartbeat_for(self) -> float:
        """How long a test keeps its lease alive before it is treated as hung."""
        return self.max_test_duration or self.lease_timeout * defaults.MAX_TEST_DURATION_LEASES

    @property
    def lease_timeout_ms(self) -> int:
        return max(1, round(self.lease_timeout * 1000))

    def build_requeue_cap(self, total: int) -> int:
        """Requeues allowed over the whole build of `total` tests."""
        return math.ceil(self.requeue_tolerance * total)

    def script_max_failures(self) -> int:
        return -1 if self.max_failures is None else self.max_failures


@dataclass(frozen=True)
class HelperConfig:
    """What the heartbeat helper (heartbeat.py) is told first: where Redis is, whose leases
    to keep, and the worker's lease timing."""

    redis_url: str
    verify_tls: bool
    build_id: str
    attempt: int
    worker_id: str
    lease_timeout: float
    heartbeat_interval: float
    max_test_duration: float
    #: The token of the worker's claim on its id (claim.py), kept alive here too.
    claim_token: str = ""
    #: Where the worker writes its stacks when asked, set when it armed hang.arm: only then
    #: does the helper signal it (for its stack, and to stop it once a unit hung).
    stack_file: str = ""
