"""Secrets a run must never print or report, and how they reach the processes that need them:
the Redis URL (its password), the GitHub token.

A process's environment can be read by the code it runs (``os.environ``), and by any process
of the same user in ``/proc/PID/environ``, which keeps the environment the program started
with whatever it later does to ``os.environ``; its command line too. So no ciqueue-gha
process (any command, the action) keeps a secret in either: finding one there, it starts
itself again (`hand_over`: exec, the same process with a new environment and command
line) without it, and reads it back from an inherited pipe that ``CIQUEUE_SECRETS_FD`` names
(`received`). ``run`` hands its workers the Redis URL the same way, never in their
environment.

What this does not do: ``pytest --ciqueue`` is configured by its environment and is the
pytest process itself, so its ``/proc/self/environ`` keeps ``CIQUEUE_REDIS_URL`` (it is taken
out of ``os.environ``); use ``ciqueue-gha worker`` where tests must not see it. A process
that started ciqueue-gha with a secret in its environment (a workflow's shell step) keeps it
there: ``exec ciqueue-gha worker ...``, as the action does, leaves no such process. And the
worker's connection to Redis lives in the pytest process: code written to search that
process's memory finds the URL; what is kept from tests is every place they print or report
by accident or by design of the suite (environment dumps, assertion introspection, crash
reports).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from contextlib import suppress
from urllib.parse import parse_qs, unquote, urlsplit

import click

from .errors import UsageError
from .truncate import shown

#: Variables that carry secrets; none of them reaches a process that runs tests.
SECRET_VARIABLES = ("CIQUEUE_REDIS_URL", "CIQUEUE_GITHUB_TOKEN", "GITHUB_TOKEN")

#: Command-line options (before ``--``) whose value is a secret, and the variable it stands for.
SECRET_OPTIONS = {"--redis-url": "CIQUEUE_REDIS_URL", "--github-token": "CIQUEUE_GITHUB_TOKEN"}

#: Names the inherited pipe a process reads its secrets from (JSON: variable -> value).
SECRETS_FD = "CIQUEUE_SECRETS_FD"

#: Bytes a pipe takes before its writer blocks (Linux's default): a hand-over must fit, as
#: nobody reads the pipe before the exec.
PIPE_CAPACITY = 65536

MASK = "***"

_received: dict[str, str] | None = None


def url_secrets(url: str) -> list[str]:
    """The URL itself and its password (in the user part or a ``password=`` query), as
    written and decoded."""
    if not url:
        return []
    found = [url]
    try:
        parts = urlsplit(url)
        passwords = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    except ValueError:
        passwords = []
    for password in filter(None, passwords):
        found += [password, unquote(password)]
    return found


class Scrubber:
    """Replaces every known secret in a text by ``***``, longest first."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Very short values would mask ordinary words; a real password is longer.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def secret_values(variables: Mapping[str, str]) -> list[str]:
    """Every form of the secrets `variables` hold (URL, password, token)."""
    found: list[str] = []
    for name, value in variables.items():
        if name in SECRET_VARIABLES and value:
            found += url_secrets(value) if name.endswith("REDIS_URL") else [value]
    return found


def take_secrets(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Remove the secret variables from `environ`; returns every secret value this process
    knows of: those the variables held and those handed over on the pipe."""
    held = {name: environ.pop(name, "") for name in SECRET_VARIABLES}
    return secret_values(held) + secret_values(received())


def received(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """The secrets handed to this process on the pipe ``CIQUEUE_SECRETS_FD`` names (read at
    the first call, which closes the pipe and removes the variable); empty if none."""
    global _received
    if _received is None:
        _received = _read_pipe(environ.pop(SECRETS_FD, ""))
    return _received


def received_default(*names: str, option: str = "") -> Callable[[], str | None]:
    """A click default: the first of `names` handed over on the pipe (the variables and the
    command line, which click reads first, hold none after `hand_over`). With `option`, a
    required one: none handed over is click's "missing option" (click takes a default's
    None for a value)."""

    def default() -> str | None:
        value = next((received()[n] for n in names if received().get(n)), None)
        if value is None and option:
            raise click.MissingParameter(param_hint=repr(option), param_type="option")
        return value

    return default


def _read_pipe(fd_text: str) -> dict[str, str]:
    if not fd_text:
        return {}
    try:
        with open(int(fd_text), "rb") as pipe:
            values = json.loads(pipe.read())
    except (ValueError, OSError):
        raise UsageError(f"{SECRETS_FD}={shown(fd_text)} names no readable pipe") from None
    if not isinstance(values, dict):
        raise UsageError(f"{SECRETS_FD}: not what ciqueue-gha hands over")
    return {str(k): v for k, v in values.items() if isinstance(v, str)}


def secrets_pipe(values: Mapping[str, str]) -> int:
    """The read end of a new pipe that holds `values`, the write end closed: a process given
    it (`subprocess.Popen` ``pass_fds``, or across exec) reads them with `received`."""
    data = json.dumps(dict(values)).encode()
    if len(data) > PIPE_CAPACITY:
        raise UsageError("the secrets (Redis URL, token) are too long to hand over")
    read, write = os.pipe()
    try:
        while data:
            data = data[os.write(write, data) :]
    finally:
        os.close(write)
    return read


def split_secrets(
    args: list[str], environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """`args` (a command line after the program) and `environ` without their secrets, and
    the secrets they held by variable name (a command-line option wins over its variable, as
    with click). Only options before ``--`` are ours; a secret option without its value is
    left for click to report."""
    found = {name: environ[name] for name in SECRET_VARIABLES if environ.get(name)}
    env = {name: value for name, value in environ.items() if name not in SECRET_VARIABLES}
    kept: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            kept += [arg, *rest]
            break
        name, equals, value = arg.partition("=")
        if name not in SECRET_OPTIONS:
            kept.append(arg)
            continue
        if not equals:
            value = next(rest, "")
        if not value:
            kept.append(arg)
            continue
        found[SECRET_OPTIONS[name]] = value
    return kept, env, found


def hand_over(args: list[str], module: str) -> None:
    """Exec this program again with the secrets of its environment and of `args` (its command
    line after the program: ``sys.argv[1:]``) moved to a pipe; returns, doing nothing, when
    neither holds one. `module` runs the program with ``python -m`` where the interpreter's
    own command line is not known."""
    kept, env, found = split_secrets(args, os.environ)
    if not found:
        return
    env[SECRETS_FD] = str(secrets_pipe({**received(), **found}))
    os.set_inheritable(int(env[SECRETS_FD]), True)
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # what was written before goes out first
            stream.flush()
    os.execve(sys.executable, [*_interpreter_argv(module), *kept], env)


def _interpreter_argv(module: str) -> list[str]:
    """How this interpreter was started, up to the program's own arguments: ``python
    /path/ciqueue-gha`` for the console script, ``python -m ciqueue_gha.cli`` ... (with any
    interpreter options), so the program starts again as it did."""
    program_args = len(sys.argv) - 1
    orig = list(getattr(sys, "orig_argv", []))
    if (
        program_args >= 0
        and len(orig) > program_args
        and orig[len(orig) - program_args :] == (sys.argv[1:])
    ):
        return orig[: len(orig) - program_args]
    return [sys.executable, "-m", module]
