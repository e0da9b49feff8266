"""A composite action run the way GitHub's runner runs it, on this machine.

What the runner does for a composite action's steps, and so what this does:

- inputs: each ``with:`` value, else the input's ``default`` (itself an expression, such as
  ``${{ github.token }}``); a required input left out, or a ``with:`` key the action does not
  declare, is an error here (the runner warns of the latter; a test should not pass with a
  typo in it);
- each step's ``env`` has its ``${{ ... }}`` expressions replaced (``inputs.*``, ``github.*``,
  ``steps.*``); an expression this module does not know fails the run rather than becoming
  an empty string, so a change to action.yml cannot slip past the test;
- a ``run:`` step with ``shell: bash`` is written to a file and run as
  ``bash --noprofile --norc -eo pipefail FILE`` in ``GITHUB_WORKSPACE``, with the runner's
  environment: the job's variables, the ``GITHUB_*`` and ``RUNNER_*`` variables, and fresh
  ``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``, ``GITHUB_ENV`` and ``GITHUB_PATH`` files;
  stdout and stderr go to one log, in the order they were written, as the runner's log has it;
- after a step: its outputs, summary and environment are read from those files (``name=value``
  and ``name<<DELIMITER`` forms), ``GITHUB_ENV``/``GITHUB_PATH`` apply to the later steps, and a
  failed step ends the job (no step here has ``if:``);
- the action's ``outputs`` are evaluated against the steps' outputs, as the calling job sees
  them.

Every step runs in a process group of its own; `ActionRunner.stop` kills what is left.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
#: The runner's command line for `shell: bash`.
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
#: Seconds one step may take before the run fails instead of hanging.
STEP_LIMIT = 120.0


class ActionError(Exception):
    """The action uses something this runner does not do, or is used wrongly."""


def evaluate(text: str, contexts: Mapping[str, Any]) -> str:
    """`text` with each ``${{ a.b.c }}`` replaced by its value in `contexts`.

    Only property paths are understood (no operators or functions). A path into ``steps``
    that names no output is empty, as on GitHub; any other unknown path is an error."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if not _PATH.fullmatch(expression):
            raise ActionError(f"expression not supported here: ${{{{ {expression} }}}}")
        node: Any = contexts
        for part in expression.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if expression.startswith("steps."):
                    return ""
                raise ActionError(f"no value for ${{{{ {expression} }}}}")
            node = node[part]
        return str(node)

    return _EXPRESSION.sub(value, text)


def parse_file_command(text: str) -> dict[str, str]:
    """The values of a GITHUB_OUTPUT / GITHUB_ENV file: ``name=value`` lines and
    ``name<<DELIMITER`` blocks, as the runner reads them (a block must be closed)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip():
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            values[line[:equals]] = line[equals + 1 :]
        elif heredoc >= 0:
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            try:
                end = lines.index(delimiter, index)
            except ValueError:
                raise ActionError(f"unclosed {delimiter!r} block for {name!r}") from None
            values[name] = "\n".join(lines[index:end])
            index = end + 1
        else:
            raise ActionError(f"invalid file command line: {line!r}")
    return values


@dataclass
class StepRun:
    """One step as it ran: exit code, log, and what it wrote to the runner's files."""

    name: str
    id: str | None
    returncode: int
    log: str
    outputs: dict[str, str]
    summary: str
    env: dict[str, str]
    log_path: Path
    pgid: int


@dataclass
class JobRun:
    """One job that used the action: its steps and the action's outputs."""

    name: str
    steps: list[StepRun]
    outputs: dict[str, str]

    @property
    def returncode(self) -> int:
        """The first failed step's exit code, else 0: the job's result."""
        return next((step.returncode for step in self.steps if step.returncode), 0)

    @property
    def summary(self) -> str:
        """The job summary: every step's summary file, in order."""
        return "".join(step.summary for step in self.steps)

    def step(self, step_id: str) -> StepRun:
        return next(step for step in self.steps if step.id == step_id)

    def describe(self) -> str:
        """Every step's exit code and log, for a failure message."""
        return "\n".join(
            f"--- {self.name} / {step.name}: exit {step.returncode}\n{step.log}"
            for step in self.steps
        )


@dataclass
class Job:
    """Where a job runs: its action checkout, its Python, its workspace, its variables."""

    name: str
    action_path: Path
    workspace: Path
    runner_temp: Path
    env: dict[str, str]
    inputs: dict[str, str]


@dataclass
class ActionRunner:
    """Runs the action of each `Job` as the runner does; `github` holds the context values
    (``github.token`` ...), `base_env` the runner machine's environment."""

    github: dict[str, str]
    base_env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_jobs(self, jobs: list[Job]) -> dict[str, JobRun]:
        """Run `jobs` at once, each in a thread of its own; their runs by name."""
        results: dict[str, JobRun] = {}
        errors: list[BaseException] = []

        def one(job: Job) -> None:
            try:
                results[job.name] = self.run_job(job)
            except BaseException as exc:  # re-raised below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(job,), name=job.name) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results

    def run_job(self, job: Job) -> JobRun:
        action = yaml.safe_load((job.action_path / "action.yml").read_text(encoding="utf-8"))
        runs = action["runs"]
        if runs.get("using") != "composite":
            raise ActionError(f"not a composite action: {runs.get('using')!r}")
        inputs = self.inputs(action, job.inputs)
        steps: list[StepRun] = []
        extra_env: dict[str, str] = {}
        extra_path: list[str] = []
        for number, step in enumerate(runs["steps"]):
            done = self.run_step(job, number, step, inputs, extra_env, extra_path)
            steps.append(done)
            extra_env.update(done.env)
            if done.returncode:
                break
        contexts = {"steps": {s.id: {"outputs": s.outputs} for s in steps if s.id}}
        outputs = {
            name: evaluate(str(spec.get("value", "")), contexts)
            for name, spec in (action.get("outputs") or {}).items()
        }
        return JobRun(job.name, steps, outputs)

    def inputs(self, action: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
        declared: dict[str, Any] = action.get("inputs") or {}
        unknown = set(given) - set(declared)
        if unknown:
            raise ActionError(f"inputs the action does not declare: {sorted(unknown)}")
        values = {}
        for name, spec in declared.items():
            if name in given:
                values[name] = given[name]
            elif spec.get("required") and "default" not in spec:
                raise ActionError(f"Input required and not supplied: {name}")
            else:
                values[name] = evaluate(str(spec.get("default", "")), {"github": self.github})
        return values

    def run_step(
        self,
        job: Job,
        number: int,
        step: dict[str, Any],
        inputs: dict[str, str],
        extra_env: dict[str, str],
        extra_path: list[str],
    ) -> StepRun:
        unsupported = set(step) - {"name", "id", "shell", "env", "run"}
        if unsupported or step.get("shell") != "bash" or "run" not in step:
            raise ActionError(f"step {step.get('name')!r}: only `shell: bash` run steps here")
        contexts = {"inputs": inputs, "github": self.github}
        folder = job.runner_temp / "_runner_file_commands" / f"step{number}"
        folder.mkdir(parents=True)
        files = {
            name: folder / name.lower()
            for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH")
        }
        for path in files.values():
            path.touch()
        script = job.runner_temp / f"{uuid.uuid4()}.sh"
        script.write_text(evaluate(str(step["run"]), contexts), encoding="utf-8")
        env = {**self.base_env, **job.env, **extra_env}
        env.update({name: str(path) for name, path in files.items()})
        env.update(
            GITHUB_ACTION_PATH=str(job.action_path),
            GITHUB_WORKSPACE=str(job.workspace),
            RUNNER_TEMP=str(job.runner_temp),
            GITHUB_ACTION=str(step.get("id") or f"__run_{number}"),
        )
        if extra_path:
            env["PATH"] = os.pathsep.join([*reversed(extra_path), env.get("PATH", "")])
        for name, value in (step.get("env") or {}).items():
            env[str(name)] = evaluate(str(value), contexts)
        log_path = job.runner_temp.parent / f"{job.name}-step{number}.log"
        returncode, pgid = self._execute([*BASH, str(script)], job.workspace, env, log_path)
        extra_path += [line for line in files["GITHUB_PATH"].read_text().splitlines() if line]
        return StepRun(
            name=str(step.get("name", f"step {number}")),
            id=step.get("id"),
            returncode=returncode,
            log=log_path.read_text(encoding="utf-8", errors="replace"),
            outputs=parse_file_command(files["GITHUB_OUTPUT"].read_text(encoding="utf-8")),
            summary=files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8"),
            env=parse_file_command(files["GITHUB_ENV"].read_text(encoding="utf-8")),
            log_path=log_path,
            pgid=pgid,
        )

    def _execute(
        self, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path
    ) -> tuple[int, int]:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self._lock:
            self.processes.append(process)
        try:
            return process.wait(timeout=STEP_LIMIT), process.pid
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            process.wait()
            raise ActionError(
                f"a step did not finish within {STEP_LIMIT} s: "
                f"{log_path.read_text(errors='replace')}"
            ) from None

    def stop(self) -> None:
        """Kill every process group a step started that still has a live process."""
        for process in self.processes:
            if live_members(process.pid):
                kill_group(process.pid)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def live_members(pgid: int) -> list[str]:
    """Processes of group `pgid` that are not zombies, as ``pid name`` (Linux's /proc).

    Zombies are left out: an orphan's exit status is the business of whoever adopted it."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended while we looked
        name = text[text.index("(") + 1 : text.rindex(")")]
        state, _ppid, group = text[text.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(f"{stat.parent.name} {name}")
    return members


def wait_group_empty(pgid: int, timeout: float = 5.0) -> list[str]:
    """The live processes left in group `pgid` once `timeout` has passed (none: empty)."""
    deadline = time.monotonic() + timeout
    while (left := live_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
