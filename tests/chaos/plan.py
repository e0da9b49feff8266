"""What each chaos round does, drawn from one seeded RNG, so a seed names a whole run.

A round starts a few `ciqueue-gha worker` processes (one of them, maybe, with its clock an
hour off) and a `ciqueue-gha summary`, then plays a timeline of faults, each at a time
measured from the moment the queue was populated:

- ``kill``: SIGKILL a worker's process group (a worker holding a lease, when one does); a new
  worker with a new id replaces it, so the round can finish;
- ``stop`` / ``cont``: SIGSTOP a worker's process group for longer than the lease timeout,
  then SIGCONT it: its leases expire, another worker takes its test over, its late result
  is kept as a stale attempt;
- ``redis_restart``: kill redis-server and start it again from its append-only file;
- ``proxy_on`` / ``proxy_off``: the TCP proxy between the workers and Redis misbehaves for a
  while: it resets every connection (and drops the reply of a request in flight) every
  100-300 ms, or it stops relaying altogether (``pause``);
- ``kill_all``: in one round, every worker is killed once a few tests are done, and none is
  replaced: the summary must give up and name the tests that did not run (exit 3).

Every fault kind is planned at least once whatever the seed and the number of rounds (from
two rounds up), and both ways of the proxy from three rounds up (one window a round, and one
round is the one that loses every worker), so a bounded run covers them all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

#: Seconds of a lease: short, so a stopped or killed worker is taken over within the round.
LEASE_TIMEOUT = 1.5

#: How far the skewed worker's clock is off, seconds (either way).
CLOCK_SKEW = 3600.0

#: The kinds of fault the suite injects; each must be injected at least once per run.
FAULT_KINDS = ("kill", "stop", "redis_restart", "proxy", "clock_skew")

#: Tests finalized before `kill_all` strikes, so some are done and some are lost.
KILL_ALL_AFTER_FINALIZED = 4

PROXY_VARIANTS = ("reset", "pause")


@dataclass(frozen=True)
class Event:
    """One step of a round's timeline, `at` seconds after the queue was populated.

    `pick` (in [0, 1)) chooses the target among the candidates at that moment, so the plan
    stays a pure function of the seed while the targets are the processes then running.
    """

    at: float
    action: str  # kill | stop | cont | redis_restart | proxy_on | proxy_off | kill_all
    pick: float = 0.0
    variant: str = ""
    pair: int = -1  # stop and cont, proxy_on and proxy_off share a pair number


@dataclass
class RoundPlan:
    index: int
    workers: int
    demo_fail: bool = False
    lose_all: bool = False  # every worker killed, none replaced: exit 3
    skewed_worker: int = -1  # index of the initial worker whose clock is off; -1: none
    skew: float = 0.0
    events: list[Event] = field(default_factory=list)

    @property
    def kinds(self) -> set[str]:
        """The fault kinds this round plans."""
        kinds = {_KIND_OF[event.action] for event in self.events if event.action in _KIND_OF}
        if self.skewed_worker >= 0:
            kinds.add("clock_skew")
        return kinds

    def describe(self) -> str:
        steps = ", ".join(
            f"{event.at:.2f}s {event.action}{'/' + event.variant if event.variant else ''}"
            for event in sorted(self.events, key=lambda e: e.at)
        )
        skew = f", worker {self.skewed_worker} clock {self.skew:+.0f}s" if self.skew else ""
        fail = ", DEMO_FAIL=1" if self.demo_fail else ""
        return (
            f"round {self.index}: {self.workers} workers{skew}{fail}; {steps or 'no other fault'}"
        )


_KIND_OF = {
    "kill": "kill",
    "kill_all": "kill",
    "stop": "stop",
    "redis_restart": "redis_restart",
    "proxy_on": "proxy",
}


def draw_plans(seed: int, rounds: int) -> list[RoundPlan]:
    """The plans of `rounds` rounds for `seed`: the same seed, the same plans."""
    rng = random.Random(seed)
    lose_round = rng.randrange(1, rounds) if rounds >= 2 else -1
    plans = [_draw_round(rng, index, lose_all=index == lose_round) for index in range(rounds)]
    ordinary = [plan for plan in plans if not plan.lose_all]
    for kind in FAULT_KINDS:
        if ordinary and not any(kind in plan.kinds for plan in plans):
            _add(rng, rng.choice(ordinary), kind)
    for variant in PROXY_VARIANTS:
        if ordinary and not any(
            event.variant == variant for plan in plans for event in plan.events
        ):
            # One proxy window a round: two would overlap, and the second would go unseen.
            free = [plan for plan in ordinary if "proxy" not in plan.kinds]
            if free:
                _add(rng, rng.choice(free), "proxy", variant)
            else:  # every round has its window, all of the other variant: turn one around
                _turn_proxy(rng.choice(ordinary), variant)
    return plans


def _turn_proxy(plan: RoundPlan, variant: str) -> None:
    plan.events = [
        replace(event, variant=variant) if event.variant else event for event in plan.events
    ]


def _draw_round(rng: random.Random, index: int, *, lose_all: bool) -> RoundPlan:
    plan = RoundPlan(index, workers=3, demo_fail=rng.random() < 0.25, lose_all=lose_all)
    if lose_all:
        plan.events.append(Event(0.0, "kill_all"))
        return plan
    for kind in rng.sample(FAULT_KINDS, rng.randint(1, 3)):
        _add(rng, plan, kind)
    return plan


def _add(rng: random.Random, plan: RoundPlan, kind: str, variant: str = "") -> None:
    """Add one fault of `kind` to `plan`, at a time while the demo suite is still running."""
    at = round(rng.uniform(0.1, 1.8), 2)
    pair = len(plan.events)
    if kind == "kill":
        plan.events.append(Event(at, "kill", rng.random()))
    elif kind == "stop":
        held = round(LEASE_TIMEOUT + rng.uniform(0.3, 1.5), 2)
        plan.events.append(Event(at, "stop", rng.random(), pair=pair))
        plan.events.append(Event(at + held, "cont", pair=pair))
    elif kind == "redis_restart":
        plan.events.append(Event(at, "redis_restart"))
    elif kind == "proxy":
        variant = variant or rng.choice(PROXY_VARIANTS)
        lasts = round(rng.uniform(0.5, 2.5), 2)
        plan.events.append(Event(at, "proxy_on", variant=variant, pair=pair))
        plan.events.append(Event(at + lasts, "proxy_off", variant=variant, pair=pair))
    elif kind == "clock_skew":
        plan.skewed_worker = rng.randrange(plan.workers)
        plan.skew = rng.choice((CLOCK_SKEW, -CLOCK_SKEW))
