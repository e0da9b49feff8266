"""What a GitHub Actions job tells us about itself, read in one place.

Run id, attempt, job, repository, API URL (GitHub Enterprise Server too), the event
payload, and the commit a check run belongs on: the pull request's head, never the merge
commit GitHub checks out for `pull_request` events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..truncate import shown

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target", "pull_request_review")


@dataclass(frozen=True)
class GitHubEnv:
    """The parts of a job's environment ciqueue-gha uses; empty strings where absent."""

    run_id: str = ""
    run_attempt: str = ""
    job: str = ""
    repository: str = ""
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    sha: str = ""
    event_name: str = ""
    event: dict[str, Any] = field(default_factory=dict)
    workspace: str = ""
    step_summary: str = ""
    output: str = ""

    @classmethod
    def from_environ(cls, env: Mapping[str, str] = os.environ) -> GitHubEnv:
        return cls(
            run_id=env.get("GITHUB_RUN_ID", ""),
            run_attempt=env.get("GITHUB_RUN_ATTEMPT", ""),
            job=env.get("GITHUB_JOB", ""),
            repository=env.get("GITHUB_REPOSITORY", ""),
            api_url=env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            server_url=env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
            sha=env.get("GITHUB_SHA", ""),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=_read_event(env.get("GITHUB_EVENT_PATH", "")),
            workspace=env.get("GITHUB_WORKSPACE", ""),
            step_summary=env.get("GITHUB_STEP_SUMMARY", ""),
            output=env.get("GITHUB_OUTPUT", ""),
        )

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

    @property
    def run_url(self) -> str:
        if not self.in_actions:
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


def _read_event(path: str) -> dict[str, Any]:
    """The event payload; a missing or unreadable file is an empty payload, not a crash."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
