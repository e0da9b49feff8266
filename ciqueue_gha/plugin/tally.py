"""What one worker did, counted as its attempts come back settled."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorkerTally:
    """What one worker did: units executed, and its attempts by disposition."""

    executed: int = 0
    final_failures: list[str] = field(default_factory=list)
    requeued: int = 0
    stale: int = 0
    stopped: bool = False  # max-failures reached, or pytest's own -x / --maxfail

    def count(self, disposition: str, *, failed: bool, unit: str = "") -> None:
        self.executed += 1
        if disposition == "requeued":
            self.requeued += 1
        elif disposition == "stale":
            self.stale += 1
        elif failed:
            self.final_failures.append(unit)
