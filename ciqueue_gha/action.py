"""The composite action's entry (``python -m ciqueue_gha.action``): inputs to a CLI call.

action.yml hands every input over as an environment variable, never spliced into a
script, so no input can inject shell. Options travel as ``CIQUEUE_*`` variables, which
the commands read; this module adds what only the action knows: masking the secrets
before anything is printed, grouping the log, and splitting the pytest arguments. The step
execs this module, which execs itself again with the secrets moved from its environment to
a pipe (secrets.py), so no process of the step that runs tests holds one there.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping

from .errors import EXIT_USAGE
from .github.workflow import WorkflowCommands
from .secrets import SECRET_VARIABLES, hand_over, received, secret_values

MODES = ("worker", "summary", "run")


def secrets_of(env: Mapping[str, str]) -> list[str]:
    """Values the log must never show: the Redis URL, its password, and the token (in `env`
    or handed over on the pipe)."""
    given = {**received(), **{k: v for k, v in env.items() if k in SECRET_VARIABLES and v}}
    return list(dict.fromkeys(secret_values(given)))


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
    if env is os.environ:
        hand_over(sys.argv[1:], "ciqueue_gha.action")
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
