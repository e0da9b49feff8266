"""The stand-in for pytest's `nextitem` behind a unit known to run long: it reserves the next
unit only when pytest asks for it (the teardown's `listchain`), once, and never turns an
error in reserving into the finished test's teardown error."""

from __future__ import annotations

from typing import Any, cast

import pytest

from ciqueue_gha.plugin.late import LateNextItem
from ciqueue_gha.queue import Done, Lease, Reservation, Wait


class FakeItem:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def listchain(self) -> list[str]:
        return ["session", "module", self.nodeid]


class Reserves:
    """A reserve that answers from a script and counts its calls."""

    def __init__(self, *answers: Reservation | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> Reservation:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def late(reserve: Reserves, *nodeids: str) -> LateNextItem:
    units = {nodeid: [cast(pytest.Item, FakeItem(nodeid))] for nodeid in nodeids}
    return LateNextItem(reserve, units)


def test_reserves_nothing_until_pytest_asks() -> None:
    reserve = Reserves(Lease("t2", 7))
    nextitem = late(reserve, "t1", "t2")
    assert reserve.calls == 0
    assert nextitem.reply is None


def test_the_teardown_question_reserves_once_and_answers_with_the_next_items_chain() -> None:
    reserve = Reserves(Lease("t2", 7))
    nextitem = late(reserve, "t1", "t2")
    assert nextitem.listchain() == ["session", "module", "t2"]
    assert nextitem.listchain() == ["session", "module", "t2"]
    assert nextitem.nodeid == "t2"  # any other attribute is the next item's
    assert reserve.calls == 1
    assert nextitem.reply == Lease("t2", 7)


@pytest.mark.parametrize("answer", [Wait(0.5), Done("exhausted"), Lease("not-collected", 3)])
def test_no_next_item_here_means_nothing_is_needed(answer: Reservation) -> None:
    reserve = Reserves(answer)
    nextitem = late(reserve, "t1")
    assert nextitem.listchain() == []
    assert nextitem.reply == answer
    with pytest.raises(AttributeError):
        _: Any = nextitem.nodeid
    nextitem.raise_error()  # nothing to raise
    assert reserve.calls == 1


def test_an_error_reserving_is_kept_for_the_worker_not_raised_in_the_teardown() -> None:
    reserve = Reserves(ConnectionError("gone"))
    nextitem = late(reserve, "t1")
    assert nextitem.listchain() == []
    assert nextitem.reply is None
    assert nextitem.listchain() == []
    assert reserve.calls == 1
    with pytest.raises(ConnectionError, match="gone"):
        nextitem.raise_error()
