"""The supervisor's pause between looks (queue/pace.py): often near the end, seldom while
the end is far."""

from __future__ import annotations

import pytest

from ciqueue_gha.queue.pace import BASE_CAP, FAR_CAP, PollPace
from ciqueue_gha.queue.supervisor import QueueStatus

FLOOR = 0.05


def status(finalized: int, total: int = 1000) -> QueueStatus:
    running = min(10, total - finalized)
    queued = total - finalized - running
    return QueueStatus(True, total, queued, running, finalized, 0, running, 0, 0)


def test_before_any_rate_it_is_the_floor() -> None:
    pace = PollPace(FLOOR)
    assert pace.pause(status(0), 0.0) == FLOOR
    assert pace.pause(status(10), 0.1) == FLOOR  # the first finalized: no rate yet


def test_a_far_end_is_looked_at_seldom_and_a_near_one_often() -> None:
    pace = PollPace(FLOOR)
    pace.pause(status(0), 0.0)
    pace.pause(status(10), 1.0)  # 10 finalized at 1 s
    # 100 more in 1 s: 890 left take 8.9 s, a tenth of which is waited.
    assert pace.pause(status(110), 2.0) == pytest.approx(0.89)
    # 990 done: 10 left take 0.1 s, less than the base pace (1 % of the time waited).
    assert pace.pause(status(990), 10.8) == pytest.approx(0.108)


def test_the_far_pause_is_capped() -> None:
    pace = PollPace(FLOOR)
    pace.pause(status(1), 0.0)
    assert pace.pause(status(2), 10.0) == FAR_CAP  # 998 left at 0.1 a second


def test_no_progress_since_the_first_is_the_base_pace() -> None:
    pace = PollPace(FLOOR)
    pace.pause(status(5), 0.0)
    assert pace.pause(status(5), 3.0) == FLOOR  # 1 % of 3 s is below the floor
    assert pace.pause(status(5), 200.0) == BASE_CAP  # 1 % of 200 s, capped
