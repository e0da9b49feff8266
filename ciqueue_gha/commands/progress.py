"""What the summary shows while it waits: one progress display for the whole build, and the
live check run (github/live.py), both fed from the supervisor's looks at the queue.

On a terminal (stderr is one and no runner reads the log) a progress bar (rich): done /
total, failures, rate, ETA, each failure printed above the bar as soon as it is seen. In a
log (CI, a pipe) a plain line every ``--progress-interval`` seconds, and each failure's line
as soon as it is seen, through github/log.py (test ids and messages are the tests' words).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from .. import durations
from ..config import ReportOptions
from ..github.env import GitHubEnv
from ..github.live import LiveCheckRun
from ..github.log import RunnerLog
from ..protocol.keys import BuildKeys
from ..queue.progress import Progress, ProgressReader
from ..queue.supervisor import QueueStatus
from ..report.progress import duration, failure_lines, progress_line

if TYPE_CHECKING:
    import redis
    from rich.progress import TaskID

#: Least seconds between two reads of the build's results (failures, what is left)...
LOOK_EVERY = 0.5
#: ... and more for a big suite, whose results take longer to read: 2 s for 100,000 units.
LOOK_PER_UNIT = 20e-6


class Display(Protocol):
    def show(self, progress: Progress) -> None: ...

    def close(self) -> None: ...


class LogDisplay:
    """Plain lines for a log: every failure as it is seen, the counts every `interval` s."""

    def __init__(
        self, interval: float, log: RunnerLog, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval, self._log, self._clock = interval, log, clock
        self._next = 0.0  # the first look prints a line

    def show(self, progress: Progress) -> None:
        for record in progress.new_failures:
            for line in failure_lines(record):
                self._log.text(f"ciqueue-gha: {line}")
        now = self._clock()
        if now >= self._next or progress.done == progress.total:
            self._log.text(progress_line(progress))
            self._next = now + self._interval

    def close(self) -> None:
        pass


class BarDisplay:
    """A progress bar on the terminal on stderr; failures printed above it."""

    def __init__(self) -> None:
        from rich.console import Console  # loaded only for a terminal
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
        from rich.progress import Progress as Bar

        self._console = Console(stderr=True, highlight=False)
        self._bar = Bar(
            TextColumn("ciqueue-gha"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=self._console,
        )
        self._task: TaskID | None = None

    def show(self, progress: Progress) -> None:
        from rich.text import Text

        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task("build", total=progress.total, status="")
        for record in progress.new_failures:
            for line in failure_lines(record):
                self._console.print(Text(line, style="red"))  # Text: no markup read in it
        status = (
            f"{progress.failed} failed · {progress.rate:.1f}/s · {progress.workers} workers · "
            f"ETA {duration(progress.eta)}"
        )
        self._bar.update(self._task, completed=progress.done, status=status)

    def close(self) -> None:
        if self._task is not None:
            self._bar.stop()


def console_display(interval: float) -> Display:
    """A bar on a terminal, plain lines in a log."""
    if sys.stderr.isatty() and not GitHubEnv.from_environ().runner:
        return BarDisplay()
    return LogDisplay(interval, RunnerLog())


class BuildWatch:
    """Follows the build from the supervisor's looks: reads its progress at most every
    `LOOK_EVERY` s (more for a big suite) and hands it to the console and the live run."""

    def __init__(
        self,
        reader: ProgressReader,
        console: Display,
        live: LiveCheckRun | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader, self.console, self.live = reader, console, live
        self._clock = clock
        self._last: float | None = None

    def observe(self, status: QueueStatus) -> None:
        """A look at the queue (the supervisor's `on_status`)."""
        now = self._clock()
        every = max(LOOK_EVERY, status.total * LOOK_PER_UNIT)
        ended = status.exhausted or status.stopped
        if not status.ready or (self._last is not None and now - self._last < every and not ended):
            return
        self._last = now
        progress = self.reader.look(status)
        self.console.show(progress)
        if self.live is not None:
            self.live.see(progress)


@contextmanager
def watching(
    client: redis.Redis, keys: BuildKeys, options: ReportOptions, stored: Mapping[str, float]
) -> Iterator[BuildWatch]:
    """A `BuildWatch` of the build `keys` while the summary waits (`stored`: the durations
    Redis keeps); the display closed after."""
    known = dict(stored)
    if options.durations_file:
        known.update(durations.load_file(options.durations_file))
    github = GitHubEnv.from_environ()
    interval = options.progress_interval
    live = LiveCheckRun.for_build(github, options.github_token, options.check_name, interval)
    watch = BuildWatch(ProgressReader(client, keys, known), console_display(interval), live)
    try:
        yield watch
    except Exception as exc:  # the build's state lost, Redis gone: the log says which
        if live is not None:
            live.abandon(type(exc).__name__)  # its message may name hosts: not for the PR
        raise
    finally:
        watch.console.close()
