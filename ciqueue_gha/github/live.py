"""The build's check run while it runs: created ``in_progress`` when the queue is populated,
updated at most every `interval` seconds with the progress (done / total, rate, ETA) and the
failures so far as annotations, completed at the end with the final report (publish.py).

Each update is one request carrying at most 50 new annotations (the API's limit per request;
the rest wait for the next update or the completion), and is tried once: a failed update is
skipped, the next one waits twice as long (up to `BACKOFF_CAP`), so a rate limit or an
outage never holds the summary up. A 403 or 404 (a fork's read-only token) ends the live run
at once and the final report goes out as it would without it (annotations in the log). The
completion is the final report's own request, with its retries; its annotations are those
not sent while running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from ..queue.progress import Progress
from ..report.annotations import Annotation
from ..report.progress import failed_cases, failure_annotations, live_summary, live_title
from .checks import (
    ANNOTATIONS_PER_REQUEST,
    CheckRunReport,
    ChecksClient,
    ChecksError,
    ChecksForbidden,
)
from .env import GitHubEnv

logger = logging.getLogger(__name__)

#: Longest wait between two updates after failed ones, seconds.
BACKOFF_CAP = 300.0


class LiveCheckRun:
    """One build's check run from population to completion; `run_id` is None until created
    (and stays None where the token may not create it)."""

    def __init__(
        self,
        checks: ChecksClient,
        name: str,
        head_sha: str,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id: int | None = None
        self.forbidden = False
        self._checks = checks
        self._name, self._head_sha = name, head_sha
        self._interval = self._wait = interval
        self._clock = clock
        self._next = 0.0  # the first look creates the run
        self._failures: list[str] = []  # node ids failed so far, for the summary
        self._pending: list[Annotation] = []
        self._sent: set[tuple[str, int, str | None]] = set()  # where, and which test

    @classmethod
    def for_build(
        cls, github: GitHubEnv, token: str | None, name: str, interval: float
    ) -> LiveCheckRun | None:
        """The live run of a build on GitHub Actions with a token and a commit; else None."""
        if not github.in_actions or not token or not github.head_sha:
            return None
        checks = ChecksClient(github.api_url, github.repository, token, max_attempts=1)
        return cls(checks, name, github.head_sha, interval)

    def see(self, progress: Progress) -> None:
        """Take in `progress`; create or update the run when it is time."""
        for record in progress.new_failures:
            self._failures += [history.final.nodeid for history in failed_cases(record)]
        self._pending += failure_annotations(progress.new_failures)
        now = self._clock()
        if self.forbidden or now < self._next:
            return
        try:
            self._send(progress)
        except ChecksForbidden:
            self.forbidden = True  # the final report falls back as it would without us
        except ChecksError as exc:
            self._wait = min(self._wait * 2, BACKOFF_CAP)
            logger.warning(
                "the live check run was not updated (%s); next in %.0f s", exc, self._wait
            )
        else:
            self._wait = self._interval
        self._next = now + self._wait

    def _send(self, progress: Progress) -> None:
        title, summary = live_title(progress), live_summary(progress, self._failures)
        if self.run_id is None:
            self.run_id = self._checks.start(self._name, self._head_sha, title, summary)
            return
        batch = self._pending[:ANNOTATIONS_PER_REQUEST]
        report = CheckRunReport(self._name, self._head_sha, "neutral", title, summary, None, batch)
        self._checks.update(self.run_id, report)
        self._sent.update(_place(annotation) for annotation in batch)
        del self._pending[: len(batch)]

    def abandon(self, why: str) -> None:
        """Complete the run as failed, saying `why`, when the summary stops without a report
        (queue state lost, Redis gone): never left in progress. Best effort: one try."""
        if self.run_id is None or self.forbidden:
            return
        summary = f"The summary stopped before the build's report ({why}); its log says why."
        report = CheckRunReport(self._name, self._head_sha, "failure", "No report", summary)
        try:
            self._checks.update(self.run_id, report, complete=True)
        except ChecksError as exc:
            logger.warning("the live check run was left in progress (%s)", exc)

    def complete(self, checks: ChecksClient, report: CheckRunReport) -> None:
        """Complete the run with the final `report` through `checks` (the final report's
        client, with its retries), adding only the annotations of tests not annotated yet
        (one sent while running stays as it was: the API cannot change it)."""
        if self.run_id is None:
            raise ValueError("no live check run to complete")
        unsent = [a for a in report.annotations if _place(a) not in self._sent]
        checks.update(self.run_id, replace(report, annotations=unsent), complete=True)


def _place(annotation: Annotation) -> tuple[str, int, str | None]:
    """Which test's failure, where: what an annotation sent while running shares with the
    final report's (whose message also says how the failure stands, trust/)."""
    return annotation.path, annotation.start_line, annotation.title
