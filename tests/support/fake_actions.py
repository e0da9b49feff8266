"""The Actions endpoints of the GitHub API stand-in (fake_github.py): a workflow run's jobs and
artifacts, as the fallback summary reads them.

- GET /repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt}/jobs
- GET /repos/{owner}/{repo}/actions/runs/{run_id}/artifacts
- GET /repos/{owner}/{repo}/actions/artifacts/{artifact_id}/zip: a 302 to the archive, as
  GitHub answers, then the archive itself from ``/_blobs/{artifact_id}``.

Every request is checked against GitHub's description of these endpoints (its path, its query
parameters: ``per_page`` 1-100 and ``page`` from 1, the bearer token and API version
headers), and every reply the stand-in makes against the response schema githubkit generates
(``ReposOwnerRepoActionsRunsRunIdAttemptsAttemptNumberJobsGetResponse200``,
``ReposOwnerRepoActionsRunsRunIdArtifactsGetResponse200``), keys unknown to the schema
included. Jobs and artifacts are set by the test (`add_job`, `end_job`, `upload`), as a
runner and actions/upload-artifact would.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydantic
from githubkit_schemas.v2022_11_28.models import (
    ReposOwnerRepoActionsRunsRunIdArtifactsGetResponse200,
    ReposOwnerRepoActionsRunsRunIdAttemptsAttemptNumberJobsGetResponse200,
)

_REPO = r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
JOBS_PATH = re.compile(_REPO + r"/actions/runs/(?P<run>\d+)/attempts/(?P<attempt>\d+)/jobs$")
ARTIFACTS_PATH = re.compile(_REPO + r"/actions/runs/(?P<run>\d+)/artifacts$")
DOWNLOAD_PATH = re.compile(_REPO + r"/actions/artifacts/(?P<id>\d+)/zip$")
BLOB_PATH = re.compile(r"^/_blobs/(?P<id>\d+)$")
PAGING = {"per_page": (1, 100), "page": (1, 10**6)}
NOW = "2026-01-01T00:00:00Z"

_ids = itertools.count(1000)


@dataclass(frozen=True)
class GetReply:
    """A GET's answer: JSON `body`, or raw `data` (an archive), and headers."""

    status: int
    body: Any = None
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeActions:
    """One repository's workflow runs as the Actions API shows them."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jobs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.artifacts: dict[str, list[dict[str, Any]]] = {}
        self.blobs: dict[int, bytes] = {}
        self.refuse: int | None = None  # answer every API GET with this status
        self._lock = threading.Lock()

    def add_job(self, run: str, attempt: int, name: str, runner: str) -> dict[str, Any]:
        job = _job(run, attempt, name, runner, self.base_url)
        with self._lock:
            self.jobs.setdefault((run, attempt), []).append(job)
        return job

    def end_job(self, job: dict[str, Any], conclusion: str) -> None:
        with self._lock:
            job.update(status="completed", conclusion=conclusion, completed_at=NOW)

    def upload(self, run: str, name: str, files: dict[str, bytes]) -> None:
        """What actions/upload-artifact does: a zip of `files`, listed under `name`."""
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            for path, data in files.items():
                zipped.writestr(path, data)
        artifact_id = next(_ids)
        with self._lock:
            self.blobs[artifact_id] = archive.getvalue()
            self.artifacts.setdefault(run, []).append(
                _artifact(artifact_id, name, len(self.blobs[artifact_id]), self.base_url)
            )

    def answer(self, url: str, headers: dict[str, str]) -> tuple[GetReply, list[str]]:
        """The reply to GET `url`, and what is wrong with the request or the reply."""
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        if blob := BLOB_PATH.match(path):
            data = self.blobs.get(int(blob["id"]))
            return (GetReply(200, data=data), []) if data else (GetReply(404), ["no blob"])
        problems = _request_problems(headers, query)
        if self.refuse is not None:
            return GetReply(self.refuse, {"message": "Resource not accessible"}), problems
        reply, model = self._route(path, query)
        if model is not None:
            problems += _reply_problems(model, reply.body)
        return reply, problems

    def _route(
        self, path: str, query: dict[str, list[str]]
    ) -> tuple[GetReply, type[pydantic.BaseModel] | None]:
        page, per_page = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["30"])[0])
        with self._lock:
            if found := JOBS_PATH.match(path):
                items = list(self.jobs.get((found["run"], int(found["attempt"])), []))
                body = _page("jobs", items, page, per_page)
                return GetReply(
                    200, body
                ), ReposOwnerRepoActionsRunsRunIdAttemptsAttemptNumberJobsGetResponse200
            if found := ARTIFACTS_PATH.match(path):
                items = list(self.artifacts.get(found["run"], []))
                body = _page("artifacts", items, page, per_page)
                return GetReply(200, body), ReposOwnerRepoActionsRunsRunIdArtifactsGetResponse200
            if found := DOWNLOAD_PATH.match(path):
                location = f"{self.base_url}/_blobs/{found['id']}"
                return GetReply(302, headers={"Location": location}), None
        return GetReply(404, {"message": "Not Found"}), None


def _page(key: str, items: list[dict[str, Any]], page: int, per_page: int) -> dict[str, Any]:
    start = (page - 1) * per_page
    return {"total_count": len(items), key: items[start : start + per_page]}


def _request_problems(headers: dict[str, str], query: dict[str, list[str]]) -> list[str]:
    problems = []
    if not headers.get("authorization", "").startswith("Bearer "):
        problems.append("no bearer token")
    if headers.get("x-github-api-version") != "2022-11-28":
        problems.append("no X-GitHub-Api-Version: 2022-11-28")
    for name, values in query.items():
        if name not in PAGING:
            problems.append(f"query parameter {name!r}: not one of the endpoint's")
            continue
        low, high = PAGING[name]
        if len(values) != 1 or not values[0].isdigit() or not low <= int(values[0]) <= high:
            problems.append(f"query parameter {name}={values}: not {low}-{high}")
    return problems


def _reply_problems(model: type[pydantic.BaseModel], body: Any) -> list[str]:
    """The stand-in's own reply against the description: a test must not pass on a reply
    GitHub never sends."""
    from tests.support.fake_github import _unknown_keys

    try:
        model.model_validate_json(json.dumps(body))
    except pydantic.ValidationError as exc:
        return [f"reply: {exc}"]
    return [f"reply: {p}" for p in _unknown_keys(model, body, "body")]


def _job(run: str, attempt: int, name: str, runner: str, base: str) -> dict[str, Any]:
    job_id = next(_ids)
    return {
        "id": job_id,
        "run_id": int(run),
        "run_url": f"{base}/repos/o/r/actions/runs/{run}",
        "run_attempt": attempt,
        "node_id": f"J_{job_id}",
        "head_sha": "0" * 40,
        "url": f"{base}/repos/o/r/actions/jobs/{job_id}",
        "html_url": f"https://github.com/o/r/actions/runs/{run}/job/{job_id}",
        "status": "in_progress",
        "conclusion": None,
        "created_at": NOW,
        "started_at": NOW,
        "completed_at": None,
        "name": name,
        "steps": [],
        "check_run_url": f"{base}/repos/o/r/check-runs/{job_id}",
        "labels": ["ubuntu-latest"],
        "runner_id": job_id,
        "runner_name": runner,
        "runner_group_id": 1,
        "runner_group_name": "GitHub Actions",
        "workflow_name": "tests",
        "head_branch": "feature",
    }


def _artifact(artifact_id: int, name: str, size: int, base: str) -> dict[str, Any]:
    url = f"{base}/repos/o/r/actions/artifacts/{artifact_id}"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": artifact_id,
        "node_id": f"A_{artifact_id}",
        "name": name,
        "size_in_bytes": size,
        "url": url,
        "archive_download_url": f"{url}/zip",
        "expired": False,
        "created_at": stamp,
        "expires_at": stamp,
        "updated_at": stamp,
    }
