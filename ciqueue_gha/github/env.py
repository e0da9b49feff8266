"""What a GitHub Actions job tells us about itself, read in one place.

Whether a runner reads our log, run id, attempt, repository, API URL (GitHub Enterprise
Server too), the workspace, the files that take step outputs and the job summary, and the
commit a check run belongs on: the pull request's head, never the merge commit GitHub
checks out for `pull_request` events. Cheap to read at each use: the event payload is read
only when asked for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..truncate import shown

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target", "pull_request_review")


@dataclass(frozen=True)
class GitHubEnv:
    """The parts of a job's environment ciqueue-gha uses; empty strings where absent."""

    runner: bool = False  # GITHUB_ACTIONS: a runner reads this process's log for commands
    run_id: str = ""
    run_attempt: str = ""
    repository: str = ""
    api_url: str = "https://api.github.com"
    sha: str = ""
    event_name: str = ""
    event_path: str = ""
    workspace: str = ""  # the checkout: annotations need paths relative to it
    step_summary: str = ""  # the file the job summary is appended to
    output: str = ""  # the file step outputs are appended to

    @classmethod
    def from_environ(cls, env: Mapping[str, str] = os.environ) -> GitHubEnv:
        return cls(
            runner=env.get("GITHUB_ACTIONS") == "true",
            run_id=env.get("GITHUB_RUN_ID", ""),
            run_attempt=env.get("GITHUB_RUN_ATTEMPT", ""),
            repository=env.get("GITHUB_REPOSITORY", ""),
            api_url=env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            sha=env.get("GITHUB_SHA", ""),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event_path=env.get("GITHUB_EVENT_PATH", ""),
            workspace=env.get("GITHUB_WORKSPACE", ""),
            step_summary=env.get("GITHUB_STEP_SUMMARY", ""),
            output=env.get("GITHUB_OUTPUT", ""),
        )

    @cached_property
    def event(self) -> dict[str, Any]:
        """The event payload; a missing or unreadable file is an empty payload, not a crash."""
        return _read_event(self.event_path)

    @property
    def attempt(self) -> int:
        """GITHUB_RUN_ATTEMPT as a number (1 when unset); a malformed one is a usage error."""
        if not self.run_attempt:
            return 1
        if not self.run_attempt.isdigit() or int(self.run_attempt) < 1:
            raise UsageError(
                f"GITHUB_RUN_ATTEMPT={shown(self.run_attempt)} is not an attempt number"
            )
        return int(self.run_attempt)

    @property
    def in_actions(self) -> bool:
        return bool(self.run_id and self.repository)

    @property
    def head_sha(self) -> str:
        """The commit the check run goes on: a pull request's head, else the pushed commit."""
        pull_request = self.event.get("pull_request")
        if self.event_name in PULL_REQUEST_EVENTS and isinstance(pull_request, dict):
            head = pull_request.get("head")
            if isinstance(head, dict) and isinstance(head.get("sha"), str):
                return str(head["sha"])
        return self.sha


def _read_event(path: str) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
