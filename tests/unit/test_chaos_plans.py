"""The fault-injection suite's plans (tests/chaos/plan.py), for any seed: every fault kind
planned, both proxy variants when two rounds or more are ordinary (one round is the one that
loses every worker), and never two proxy windows in one round (they would overlap, and the
second would go unseen)."""

from __future__ import annotations

import pytest

from tests.chaos.plan import FAULT_KINDS, PROXY_VARIANTS, draw_plans


@pytest.mark.parametrize("rounds", [2, 3, 5, 10])
def test_any_seed_plans_every_fault_once_and_one_proxy_window_a_round(rounds: int) -> None:
    for seed in range(500):
        plans = draw_plans(seed, rounds)
        assert set(FAULT_KINDS) <= set().union(*(plan.kinds for plan in plans)), seed
        variants = {event.variant for plan in plans for event in plan.events if event.variant}
        ordinary = [plan for plan in plans if not plan.lose_all]
        assert variants == set(PROXY_VARIANTS) or len(ordinary) < 2, seed
        for plan in plans:
            assert sum(event.action == "proxy_on" for event in plan.events) <= 1, (seed, plan)
