"""Where the summary finds the fallback workers' deliveries: a directory (`--results-dir`),
or the workflow run's artifacts, waited for until every worker delivered or every other job
of the run attempt ended."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InfrastructureError
from ..queue.supervisor import Verdict
from .artifacts import RunApi, WorkerArtifact
from .delivery import Delivery

#: Seconds between two looks at the run's jobs and artifacts.
POLL = 2.0


@dataclass
class Gathered:
    """The deliveries by worker index, how many workers there were (None: no word of it), and
    why the summary stopped waiting (every worker delivered: EXHAUSTED)."""

    deliveries: dict[int, Delivery] = field(default_factory=dict)
    total: int | None = None
    verdict: Verdict = Verdict.EXHAUSTED

    @property
    def missing(self) -> list[int]:
        return [i for i in range(self.total or 0) if i not in self.deliveries]

    def add(self, delivery: Delivery, expected: int | None) -> None:
        total = expected or self.total or delivery.total
        if delivery.total != total or not 0 <= delivery.index < total:
            raise InfrastructureError(
                f"worker {delivery.index} delivered a share of {delivery.total} workers, "
                f"the build has {total}: the build's results are in doubt"
            )
        self.total = total
        self.deliveries[delivery.index] = delivery


def from_directory(folder: Path, expected: int | None) -> Gathered:
    """Every delivery in `folder`, at once (its workers have ended)."""
    gathered = Gathered(total=expected)
    for path in sorted(folder.glob("ciqueue-worker-*.json")):
        gathered.add(Delivery.from_json(path.read_text(encoding="utf-8"), str(path)), expected)
    if gathered.missing or not gathered.deliveries:
        gathered.verdict = Verdict.INACTIVE_WORKERS
    return gathered


class ArtifactWatch:
    """Waits for the fallback workers' artifacts of this run attempt.

    Done when every worker of this attempt delivered; or when every other job of the
    attempt has ended, taking each worker's latest delivery up to this attempt (after
    "re-run failed jobs", the workers not re-run delivered in an earlier one); or when
    `timeout` passes. Our own job is the one running on this runner (RUNNER_NAME).
    """

    def __init__(self, api: RunApi, attempt: int, expected: int | None, timeout: float) -> None:
        self.api, self.attempt, self.expected = api, attempt, expected
        self.deadline = time.monotonic() + timeout
        self.fetched: dict[int, WorkerArtifact] = {}
        self.gathered = Gathered(total=expected)

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> Gathered:
        while True:
            ended = self._others_ended()  # first: what they uploaded before ending is listed
            self._fetch_new()
            if self._all_of_this_attempt() or ended:
                break
            if time.monotonic() > self.deadline:
                self.gathered.verdict = Verdict.REPORT_TIMEOUT
                return self.gathered
            sleep(POLL)
        if self.gathered.missing or not self.gathered.deliveries:
            self.gathered.verdict = Verdict.INACTIVE_WORKERS
        return self.gathered

    def _others_ended(self) -> bool:
        runner = os.environ.get("RUNNER_NAME")
        others = [
            job
            for job in self.api.jobs()
            if not (
                runner and job.get("runner_name") == runner and job.get("status") != "completed"
            )
        ]
        return all(job.get("status") == "completed" for job in others)

    def _fetch_new(self) -> None:
        for artifact in self.api.worker_artifacts():
            held = self.fetched.get(artifact.index)
            if held is not None and held.attempt >= artifact.attempt:
                continue
            files = self.api.files(artifact)
            source = f"artifact {artifact.id}"
            for name, data in sorted(files.items()):
                if name.endswith(".json"):
                    delivery = Delivery.from_json(data.decode("utf-8", "replace"), source)
                    self.gathered.add(delivery, self.expected)
            self.fetched[artifact.index] = artifact

    def _all_of_this_attempt(self) -> bool:
        total = self.gathered.total
        current = {i for i, a in self.fetched.items() if a.attempt == self.attempt}
        return total is not None and current >= set(range(total))
