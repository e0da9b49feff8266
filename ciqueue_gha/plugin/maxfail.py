"""pytest's ``-x`` / ``--maxfail N``, made the build's ``--max-failures``.

Left to pytest, each worker counts its own failures and stops alone, while the other
workers run the suite on. Read from pytest's parsed options (so ``addopts`` in an ini file
and ``PYTEST_ADDOPTS`` count too, and ``-xvs`` is understood as pytest understands it), the
cap becomes the build's: the queue stops handing out tests once that many have failed,
whichever worker saw them, and pytest's own count is switched off in the worker.
"""

from __future__ import annotations

from argparse import Namespace
from dataclasses import replace

from ..queue.settings import QueueSettings


def build_max_failures(max_failures: int | None, maxfail: int) -> int | None:
    """The build's failure cap: the lower of ``--max-failures`` and pytest's ``maxfail``
    (1 for ``-x``; 0, pytest's default, means none)."""
    if maxfail <= 0:
        return max_failures
    return maxfail if max_failures is None else min(max_failures, maxfail)


def take_over_maxfail(option: Namespace, settings: QueueSettings) -> QueueSettings:
    """`settings` with pytest's ``maxfail`` (in `option`, pytest's parsed options) as the
    build's cap; pytest's own count is switched off, so no worker stops on its own count."""
    cap = build_max_failures(settings.max_failures, getattr(option, "maxfail", 0) or 0)
    option.maxfail = 0
    return replace(settings, max_failures=cap)
