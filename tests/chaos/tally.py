"""What the chaos suite did over a session: rounds run and faults injected, by kind.

Counted when a fault reached something (a signal delivered to a live process group, a
proxy that closed or held connections while workers ran, a skewed worker that ran tests),
not when it was planned. Each round's report carries the tally so far (a user property, which
xdist hands back from its workers); tests/chaos/conftest.py prints the last one at the end of
the session.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FaultTally:
    seed: int = 0
    planned_rounds: int = 0
    rounds: int = 0
    seconds: float = 0.0
    clock_mechanism: str = ""
    injected: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)
    exits: Counter[int] = field(default_factory=Counter)

    def line(self) -> str:
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.injected.items()))
        details = ", ".join(f"{what} {count}" for what, count in sorted(self.details.items()))
        exits = ", ".join(f"{code}: {count}" for code, count in sorted(self.exits.items()))
        return (
            f"chaos: seed {self.seed}, {self.rounds}/{self.planned_rounds} rounds in "
            f"{self.seconds:.0f} s; faults injected: {faults or 'none'} ({details}); "
            f"summary exit codes {{{exits}}}; skewed clock by {self.clock_mechanism or '-'}"
        )


#: The session's tally: the rounds add to it.
TALLY = FaultTally()

#: The name of the report property that holds `TALLY.line()`.
TALLY_PROPERTY = "chaos tally"
