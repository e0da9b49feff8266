"""The lease queue: a worker's operations, its heartbeat helper, the supervisor, the record.

Small on purpose; the pytest plugin and the CLI stand on these names. They are imported
when first used: `ciqueue-gha run` reads the queue's settings before it starts its workers,
and should not wait for Redis's client library to load first.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .record import Attempt, AttemptRecord, BuildRecord, CaseRecord
    from .settings import QueueSettings
    from .supervisor import Outcome, QueueStatus, Supervisor, Verdict
    from .worker import Done, Lease, Population, QueueWorker, Reservation, Wait, Window

_MODULES = {
    "record": ("Attempt", "AttemptRecord", "BuildRecord", "CaseRecord"),
    "settings": ("QueueSettings",),
    "supervisor": ("Outcome", "QueueStatus", "Supervisor", "Verdict"),
    "worker": ("Done", "Lease", "Population", "QueueWorker", "Reservation", "Wait", "Window"),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "Attempt",
    "AttemptRecord",
    "BuildRecord",
    "CaseRecord",
    "Done",
    "Lease",
    "Outcome",
    "Population",
    "QueueSettings",
    "QueueStatus",
    "QueueWorker",
    "Reservation",
    "Supervisor",
    "Verdict",
    "Wait",
    "Window",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
