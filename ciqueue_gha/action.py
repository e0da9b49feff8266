"""The composite action's entry (``python -m ciqueue_gha.action``): inputs to a CLI call.

action.yml hands every input over as an environment variable, never spliced into a
script, so no input can inject shell. Options travel as ``CIQUEUE_*`` variables, which
the commands read; this module adds what only the action knows: masking the secrets
before anything is printed, grouping the log, and splitting the pytest arguments.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping

from .errors import EXIT_USAGE
from .github.workflow import WorkflowCommands
from .secrets import url_secrets

MODES = ("worker", "summary", "run")


def secrets_of(env: Mapping[str, str]) -> list[str]:
    """Values the log must never show: the Redis URL, its password, and the token."""
    found = url_secrets(env.get("CIQUEUE_REDIS_URL", ""))
    found += [token for token in [env.get("CIQUEUE_GITHUB_TOKEN", "")] if token]
    return list(dict.fromkeys(found))


def cli_argv(env: Mapping[str, str]) -> list[str]:
    """The ciqueue-gha command line for the action's inputs (options come from CIQUEUE_*)."""
    mode = env.get("CIQUEUE_ACTION_MODE", "").strip()
    if mode not in MODES:
        raise ValueError(f"input 'mode' must be one of {', '.join(MODES)}, not {mode!r}")
    argv = [mode]
    if mode == "run":
        argv += ["--workers", env.get("CIQUEUE_ACTION_WORKERS", "") or "2"]
    if mode in ("worker", "run"):
        argv += ["--", *shlex.split(env.get("CIQUEUE_ACTION_PYTEST_ARGS", ""))]
    return argv


def main(env: Mapping[str, str] = os.environ) -> int:
    commands = WorkflowCommands(sys.stdout, env)
    for secret in secrets_of(env):
        commands.add_mask(secret)
    try:
        argv = cli_argv(env)
    except ValueError as exc:
        commands.error(f"ciqueue-gha: {exc}")
        return EXIT_USAGE
    from .cli import main as cli_main

    with commands.group(f"ciqueue-gha {argv[0]}"):
        try:
            cli_main(argv)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
