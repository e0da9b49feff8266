"""The lease queue: a worker's operations, its heartbeat helper, the supervisor, the record.

Small on purpose; the pytest plugin and the CLI stand on these names.
"""

from .record import Attempt, AttemptRecord, BuildRecord, CaseRecord
from .settings import QueueSettings
from .supervisor import Outcome, QueueStatus, Supervisor, Verdict
from .worker import Done, Lease, Population, QueueWorker, Reservation, Wait

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
]
