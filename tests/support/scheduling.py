"""How ./check spreads the suite over pytest-xdist workers.

Each test is a unit of work of its own, sent to whichever worker is free, except the tests of
a module in `TOGETHER`, which go to one worker as one unit and run there in file order: they
share a module-scoped fixture worth building once (a plain pytest run to compare with, a
wheel, a stressed build), or check together what their tests did (the chaos rounds).
Units go out largest first, then the single tests in collection order, where tests/conftest.py
puts the longest first: no worker is left alone at the end with a long one.

This keys units on module paths, not on ``xdist_group`` marks: xdist's ``loadgroup`` passes
the group inside the node id, which pytest 9.2 no longer lets it change (pytest-xdist #1386),
so the marks are silently ignored there.
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadScopeScheduling

TOGETHER = frozenset(
    {
        "tests/chaos/test_chaos.py",  # the last test checks what every round injected
        "tests/e2e/test_collection.py",  # plain pytest over each collection case, once
        "tests/e2e/test_redis_refusals.py",  # two refusing servers and a large suite
        "tests/e2e/test_runner.py",  # plain pytest over the demo and the fixture suite
        "tests/e2e/test_wheel.py",  # the wheel, built once
        "tests/integration/test_round_trips.py",  # one measured drain
        "tests/integration/test_stress.py",  # one stressed build, checked by every test
        "tests/integration/test_tls.py",  # certificates and a TLS server
    }
)


#: Tests (node id prefixes) that take 10 s or more alone: handed out before the others.
LONGEST = (
    "tests/integration/test_queue_model.py",
    "tests/e2e/test_eviction.py::test_eviction_never_gives",
    "tests/e2e/test_state_lost.py::test_a_key_lost_after_the_build",
    "tests/e2e/test_summary_rerun.py",
    "tests/e2e/test_fail_fast.py::test_redis_",
    "tests/e2e/test_hang.py",
    "tests/e2e/test_action_install.py",
    "tests/e2e/test_output_safety.py::test_the_action_runs",
    "tests/e2e/test_example_workflow.py",
)


def first_in_line(item: pytest.Item) -> int:
    """Where `item` goes in the order tests are handed out: the longest, then the other
    slow ones, then the rest (a stable sort keeps the file order within each)."""
    if item.nodeid.startswith(LONGEST):
        return 0
    return 1 if item.get_closest_marker("slow") else 2


class ModuleGroups(LoadScopeScheduling):
    """`LoadScopeScheduling` whose scopes are whole modules for `TOGETHER`, else single tests."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module in TOGETHER else nodeid
