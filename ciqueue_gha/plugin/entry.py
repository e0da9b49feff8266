"""What pytest loads through the ``pytest11`` entry point: idle unless ``--ciqueue`` is given.

``pytest --ciqueue`` makes the session a queue worker configured by the ``CIQUEUE_*``
variables, exactly as ``ciqueue-gha worker`` would be (see ``ciqueue-gha worker --help``).
``ciqueue-gha worker`` is the usual way; this is for runners that must call pytest itself.

What it cannot do that ``ciqueue-gha worker`` does: keep the secrets from the tests. The
session is configured by its environment, so ``CIQUEUE_REDIS_URL`` (and a token, if set) is
in the environment the process started with, which a test can read in
``/proc/self/environ`` though it is taken out of ``os.environ``; and under a runner its
output is pytest's own, not a block the runner reads no command from (github/log.py).
Imported by every pytest run in the environment, so it imports nothing else until asked.
"""

from __future__ import annotations

import click
import pytest

from ..errors import CiqueueError

PLUGIN_NAME = "ciqueue-worker"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ciqueue-gha").addoption(
        "--ciqueue",
        action="store_true",
        default=False,
        help="run this session as a ciqueue-gha worker, configured by CIQUEUE_* variables",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("ciqueue") or config.pluginmanager.has_plugin(PLUGIN_NAME):
        return
    from .session import start_from_environment  # loaded only now: pytest loads this module

    try:
        session = start_from_environment()
    except (CiqueueError, click.ClickException) as exc:
        raise pytest.UsageError(f"ciqueue-gha: {exc}") from None
    config.pluginmanager.register(session.plugin, PLUGIN_NAME)
    config.add_cleanup(session.close)
