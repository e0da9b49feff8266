"""The pytest sessions the tests start (in `ciqueue-gha worker` processes, or plain pytest
to compare with) skip the plugins of this venv that cost time and that no suite of theirs
uses: hundreds of such processes run in one ./check."""

from __future__ import annotations

from collections.abc import MutableMapping

#: Hypothesis's plugin imports all of Hypothesis when a session ends (0.6 s of CPU), anyio's
#: imports anyio (0.15 s): more than pytest itself costs a small suite.
UNUSED_PLUGINS = "-p no:hypothesispytest -p no:anyio"


def skip_unused_plugins(environ: MutableMapping[str, str]) -> None:
    """Have the pytest sessions started with `environ` skip `UNUSED_PLUGINS`."""
    environ["PYTEST_ADDOPTS"] = f"{environ.get('PYTEST_ADDOPTS', '')} {UNUSED_PLUGINS}".strip()
