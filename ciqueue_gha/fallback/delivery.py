"""What a fallback worker delivers: its share's attempts, its collection's reports and the
whole split it computed, as one JSON file the summary reads back (a workflow artifact, or a
file in a shared directory).

JSON rather than JUnit: JUnit names a test by class and name, which do not give its node id
back, and holds no attempt history; this file holds the records the queue would hold, so the
summary reports a fallback build with the same code as a build from Redis. The worker's
JUnit file is written beside it for people and tools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InfrastructureError
from ..queue.record import AttemptRecord, CaseRecord

#: The file format's version; a summary refuses a delivery of another.
FORMAT = 1
#: The JUnit testsuite's name in a fallback build: the file says it ran without the queue too.
SUITE_NAME = "pytest (without the queue: static fallback)"
#: The default directory a fallback worker delivers to (the example workflow uploads it).
RESULTS_DIR = Path("ciqueue-results")


def file_name(index: int) -> str:
    return f"ciqueue-worker-{index}.json"


@dataclass
class Delivery:
    """Worker `index` of `total`: its attempts (each with the queue's word for what became of
    it: final or requeued) and what its collection reported."""

    index: int
    total: int
    worker: str
    shares: list[list[str]]  # the whole split, one list per worker index
    attempts: list[tuple[AttemptRecord, str]] = field(default_factory=list)
    collection: list[CaseRecord] = field(default_factory=list)
    interrupted: bool = False  # collection errors stopped it, as plain pytest stops
    stopped: bool = False  # its failure cap (--max-failures, -x) stopped it

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            **{k: v for k, v in vars(self).items() if k not in ("attempts", "collection")},
            # Each record as the queue stores it (`AttemptRecord.to_json`).
            "attempts": [{"disposition": d, "record": r.to_json()} for r, d in self.attempts],
            "collection": [vars(case) for case in self.collection],
        }
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, source: str) -> Delivery:
        """The delivery in `text`; `InfrastructureError` naming `source` if it is not one."""
        try:
            data: dict[str, Any] = json.loads(text)
            if data.pop("format", None) != FORMAT:
                raise ValueError(f"not format {FORMAT}")
            attempts = [
                (AttemptRecord.from_json(entry["record"]), str(entry["disposition"]))
                for entry in data.pop("attempts")
            ]
            collection = [CaseRecord(**case) for case in data.pop("collection")]
            return cls(**data, attempts=attempts, collection=collection)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InfrastructureError(
                f"{source} is no ciqueue-gha worker delivery ({type(exc).__name__}): "
                "the build's results are in doubt"
            ) from None

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file_name(self.index)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path
