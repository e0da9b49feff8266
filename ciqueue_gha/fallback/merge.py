"""Deliveries made the records a build from Redis has, so every report reads them alike."""

from __future__ import annotations

from collections.abc import Sequence

from ..queue.collection import CollectedReport, CollectionRecord
from ..queue.record import STRUCTURAL_KEYS, Attempt, AttemptRecord, BuildRecord
from .delivery import Delivery


def build_record(deliveries: Sequence[Delivery], units: list[str]) -> BuildRecord:
    """The build record of `units` from what `deliveries` ran; a unit a delivery ran that is
    not in `units` (its worker collected another suite) is a stray, as the queue's are."""
    results: dict[str, AttemptRecord] = {}
    attempts: dict[str, list[Attempt]] = {}
    for delivery in deliveries:
        for record, disposition in delivery.attempts:
            attempts.setdefault(record.unit, []).append(Attempt(record, disposition))
            if disposition == "final":
                results[record.unit] = record
    listed = set(units)
    strays = {
        d.worker: [unit for unit in d.shares[d.index] if unit not in listed]
        for d in deliveries
        if d.shares and any(unit not in listed for unit in d.shares[d.index])
    }
    return BuildRecord(
        populated=True,
        units=units,
        results={unit: record for unit, record in results.items() if unit in listed},
        attempts=attempts,
        takeovers={},
        strays=strays,
        total=len(units),
        basis=0,
        present=frozenset(STRUCTURAL_KEYS),
    )


def collection_record(deliveries: Sequence[Delivery]) -> CollectionRecord:
    """What the workers' collections reported, each collector's report once (the first
    delivery's), as the queue keeps it."""
    seen: dict[str, CollectedReport] = {}
    for delivery in deliveries:
        for case in delivery.collection:
            seen.setdefault(case.nodeid, CollectedReport(case, delivery.worker))
    interrupted_by = next((d.worker for d in deliveries if d.interrupted), None)
    return CollectionRecord(list(seen.values()), interrupted_by, len(seen))
