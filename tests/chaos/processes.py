"""The processes of a chaos round and what a played round leaves behind: how a round starts
its children (the `ciqueue-gha` entry point, a clean environment), what the driver saw of
each, and the `RoundResult` that test_chaos.py checks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ciqueue_gha.queue.record import BuildRecord
from tests.chaos.plan import RoundPlan
from tests.support.child_pytest import skip_unused_plugins


def cli() -> list[str]:
    """The installed `ciqueue-gha` entry point, as a user runs it."""
    script = Path(sys.executable).with_name("ciqueue-gha")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ciqueue_gha.cli"]


def clean_env() -> dict[str, str]:
    """This process's environment less anything that would configure the children."""
    drop = ("CIQUEUE_", "GITHUB_", "PYTEST_", "DEMO_FAIL", "FAKETIME", "CHAOS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for name in ("PYTHONPATH", "LD_PRELOAD", "DONT_FAKE_MONOTONIC"):
        env.pop(name, None)
    skip_unused_plugins(env)
    return env


@dataclass
class Proc:
    """A process of the round, and what the driver saw of it (wall-clock times)."""

    name: str
    popen: subprocess.Popen[bytes]
    skew: float = 0.0
    exited_at: float | None = None
    killed: bool = False
    stopped: bool = False

    @property
    def live(self) -> bool:
        return self.exited_at is None and not self.killed


@dataclass
class RoundResult:
    """What a played round left behind, for the checks of test_chaos.py."""

    plan: RoundPlan
    folder: Path
    build_id: str
    started_at: float  # wall clock, before the first process started
    ended_at: float
    summary_code: int
    summary_exit: float  # wall clock when the driver first saw the summary gone
    workers: dict[str, Proc]
    record: BuildRecord
    junit: Path
    injected: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def stdout(self, name: str) -> str:
        return (self.folder / f"{name}.out").read_text(errors="replace")

    def stderr(self, name: str) -> str:
        return (self.folder / f"{name}.err").read_text(errors="replace")

    def logs(self) -> str:
        """Everything to look at when a check fails: the plan, what happened, the outputs."""
        parts = [self.plan.describe(), *self.notes]
        for name in ["summary", *self.workers]:
            parts.append(f"--- {name} stdout ---\n{self.stdout(name)[-3000:]}")
            parts.append(f"--- {name} stderr ---\n{self.stderr(name)[-3000:]}")
        return "\n".join(parts)
