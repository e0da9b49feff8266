"""The static fallback's options (DESIGN.md §1), each also read from CIQUEUE_<NAME>."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..options import F, ShortChoice, _option, _stack, whole

#: Most workers one build may have in the fallback (a matrix has at most 256 jobs).
MAX_WORKERS = 10_000

fallback_option = _option(
    "--fallback",
    type=ShortChoice(["static", "off"]),
    default="off",
    show_default=True,
    help="With no Redis URL, or a Redis unreachable at the first contact: `static` runs "
    "without the queue (each worker a fixed share, the summary gathers their results), `off` "
    "fails as without this option. The action's default is static.",
)

#: Where the deliveries are, for both commands.
RESULTS_DIR_HELP = (
    "Fallback: where workers write their results (default: ciqueue-results) and the summary "
    "reads them (default on GitHub Actions: the run's artifacts)."
)
results_dir_option = _option(
    "--results-dir", type=click.Path(file_okay=False, path_type=Path), help=RESULTS_DIR_HELP
)


def worker_total_option(help: str, **given: Any) -> Callable[[F], F]:
    return _option("--worker-total", type=whole(1, MAX_WORKERS), help=help, **given)


#: `worker`'s: which share of the suite this worker runs in the fallback.
worker_fallback_options = _stack(
    fallback_option,
    _option(
        "--worker-index",
        type=whole(0, MAX_WORKERS - 1),
        default=0,
        show_default=True,
        help="Fallback: this worker's share, 0 to --worker-total - 1 (`strategy.job-index`).",
    ),
    worker_total_option(
        "Fallback: how many workers share the suite (`strategy.job-total`).",
        default=1,
        show_default=True,
    ),
    results_dir_option,
)

#: `summary`'s: how many deliveries to expect, and where they are.
summary_fallback_options = _stack(
    fallback_option,
    worker_total_option("Fallback: how many workers deliver results. Default: as they say."),
    results_dir_option,
)
