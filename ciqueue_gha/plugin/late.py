"""pytest's `nextitem` for a unit whose successor is not known yet: the lease window
(ahead.py) answers when pytest first asks."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from ..queue.worker import Lease, Reservation


class LateNextItem:
    """pytest's `nextitem` for a unit whose successor is not known yet (it runs long, or the
    reply that names it is in flight): asks `answer` when pytest first asks about it, which
    its teardown does (``listchain``) to know which fixtures the next item still needs. No
    next unit, or an error asking (kept for `raise_error`, so it is not reported as the
    test's teardown error): nothing is needed. Any other attribute is the next item's."""

    def __init__(
        self, answer: Callable[[], Reservation], units: Mapping[str, list[pytest.Item]]
    ) -> None:
        self._answer = answer
        self._units = units
        self.reply: Reservation | None = None
        self._item: pytest.Item | None = None
        self._error: Exception | None = None
        self.waited = 0.0  # seconds the teardown that asked waited for the answer

    def resolve(self) -> pytest.Item | None:
        if self.reply is None and self._error is None:
            started = time.perf_counter()
            try:
                self.reply = self._answer()
            except Exception as exc:
                self._error = exc
            self.waited = time.perf_counter() - started
            if isinstance(self.reply, Lease) and self.reply.unit in self._units:
                self._item = self._units[self.reply.unit][0]
        return self._item

    def listchain(self) -> list[Any]:  # pytest's nodes, session first
        item = self.resolve()
        return item.listchain() if item is not None else []

    def __getattr__(self, name: str) -> Any:
        item = self.resolve()
        if item is None:
            raise AttributeError(name)
        return getattr(item, name)

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error
