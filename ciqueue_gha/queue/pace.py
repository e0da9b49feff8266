"""How long the supervisor waits between looks at the queue.

A look (the status script) costs Redis the same whatever the build's size, about 0.1 ms:
looked at every 50 ms, a build of trivial tests spends more of Redis on its supervisor than
on some of its tests. The end itself wakes the supervisor (supervisor.py, `_until_ended`);
the looks see the rest (a stop, the timeouts, the progress shown): while the end is far, as
seldom as the end's distance allows.

    base        `floor`, or 1 % of the time waited, at most `BASE_CAP` (a long build)
    far         a tenth of the time left at the rate tests were finalized since the
                first was, at most `FAR_CAP`: the end is not near, and a wrong guess
                costs at most that much
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .supervisor import QueueStatus

#: The base pause never exceeds this, seconds: timeouts and lost workers are seen in time.
BASE_CAP = 0.5
#: A pause for an end that is far never exceeds this, seconds.
FAR_CAP = 2.0
#: Of the time left, the share waited before the next look.
FAR_SHARE = 0.1


class PollPace:
    """The pause before each next look, from what the looks so far showed."""

    def __init__(self, floor: float) -> None:
        self.floor = floor
        self._start: float | None = None
        self._first: tuple[float, int] | None = None  # (when, finalized) at the first finalized

    def pause(self, status: QueueStatus, now: float) -> float:
        """Seconds to wait after seeing `status` at `now` (a monotonic clock's reading)."""
        if self._start is None:
            self._start = now
        pause = min(max(self.floor, (now - self._start) / 100), BASE_CAP)
        left = self._time_left(status, now)
        return max(pause, min(FAR_SHARE * left, FAR_CAP)) if left is not None else pause

    def _time_left(self, status: QueueStatus, now: float) -> float | None:
        """Seconds until every test is finalized at the rate so far; None: no rate yet."""
        if status.finalized == 0:
            return None
        if self._first is None:
            self._first = (now, status.finalized)
            return None
        since, finalized = self._first
        done = status.finalized - finalized
        if done <= 0 or now <= since:
            return None
        return (status.total - status.finalized) * (now - since) / done
