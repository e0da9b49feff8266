"""What a worker's lease window tells whatever keeps its leases alive (its heartbeat helper,
helper_process.py; a stand-in in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from .record import AttemptRecord
from .worker import Lease


class Heartbeat(Protocol):
    """Keeps a running lease, and the rest of the worker's window, alive while the unit runs."""

    def hold(
        self,
        running: Lease,
        *others: Lease,
        finished: Sequence[tuple[Lease, AttemptRecord]] = (),
        unstarted: int = 0,
        overrun: float | None = None,
    ) -> None:
        """From now on keep these leases alive (and no others): `running`, the unit that
        runs now, and the others the worker holds (not started yet, or run and not yet
        acknowledged). `finished`: attempts run since the last call and not acknowledged
        yet, for the helper to acknowledge if the worker dies or hangs before it does. The
        first `unstarted` others are held and not started: should `running` run past
        `overrun` seconds, they are given back but the first (overrun.py)."""

    def starting(self) -> AbstractContextManager[None]:
        """Held while the worker starts a unit: nothing is given back meanwhile."""

    def given_back(self) -> list[Lease]:
        """The leases given back since the last call (read while `starting` is held)."""

    def run(self, running: Lease, finished: Sequence[tuple[Lease, AttemptRecord]] = ()) -> None:
        """As `hold`, the leases the same as at the last call: another of them, `running`,
        started (most units: a window is not told again for each)."""
