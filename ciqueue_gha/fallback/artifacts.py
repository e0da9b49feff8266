"""The workflow run's jobs and the fallback workers' artifacts, through GitHub's REST API with
the job's own token (a fork's pull request may read them: `actions: read`).

Endpoints (API version 2022-11-28): list jobs for a workflow run attempt, list workflow run
artifacts, download an artifact (a redirect to a zip archive). A reply that is no success,
after `TRIES` tries for 5xx answers and connection errors, is `InfrastructureError`: without
the workers' results the build's state is in doubt. The token goes into the Authorization
header of API requests only, never into a message or the archive's redirected request.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from .. import __version__
from ..errors import InfrastructureError
from ..github.env import GitHubEnv

#: Tries of one request, and the first wait between them (doubling), seconds.
TRIES = 4
BACKOFF = 1.0
#: Seconds one request may take.
REQUEST_TIMEOUT = 30.0
#: Items per page (the API's most).
PER_PAGE = 100
#: The artifact a fallback worker uploads: ``ciqueue-results-<run attempt>-<worker index>``.
ARTIFACT_NAME = re.compile(r"^ciqueue-results-(?P<attempt>\d+)-(?P<index>\d+)$")


@dataclass(frozen=True)
class WorkerArtifact:
    """A fallback worker's artifact: its run attempt and worker index, and where it is."""

    id: int
    attempt: int
    index: int
    url: str


class RunApi:
    """Reads one workflow run's jobs and artifacts."""

    def __init__(
        self,
        github: GitHubEnv,
        token: str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._repo = f"{github.api_url}/repos/{github.repository}"
        self._run = f"{self._repo}/actions/runs/{github.run_id}"
        self._attempt = github.attempt
        self._token = token
        self._session = session or requests.Session()
        self._sleep = sleep

    def jobs(self) -> list[dict[str, Any]]:
        """Every job of this run attempt (status, runner name...)."""
        return self._pages(f"{self._run}/attempts/{self._attempt}/jobs", "jobs")

    def worker_artifacts(self) -> list[WorkerArtifact]:
        """The fallback workers' artifacts of this run, any attempt up to this one."""
        found = []
        for artifact in self._pages(f"{self._run}/artifacts", "artifacts"):
            named = ARTIFACT_NAME.match(str(artifact.get("name", "")))
            if named and not artifact.get("expired") and int(named["attempt"]) <= self._attempt:
                url = str(artifact["archive_download_url"])
                found.append(
                    WorkerArtifact(
                        int(artifact["id"]), int(named["attempt"]), int(named["index"]), url
                    )
                )
        return found

    def files(self, artifact: WorkerArtifact) -> dict[str, bytes]:
        """The files of `artifact`'s zip archive, by name."""
        archive = self._get(artifact.url).content
        try:
            with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
                return {name: zipped.read(name) for name in zipped.namelist()}
        except zipfile.BadZipFile:
            raise InfrastructureError(
                f"artifact {artifact.id} is no zip archive: the build's results are in doubt"
            ) from None

    def _pages(self, url: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._get(url, {"per_page": PER_PAGE, "page": page}).json()
            items += body[key]
            if not body[key] or len(items) >= int(body["total_count"]):
                return items
            page += 1

    def _get(self, url: str, params: dict[str, int] | None = None) -> requests.Response:
        failure = ""
        for attempt in range(TRIES):
            if attempt:
                self._sleep(BACKOFF * 2 ** (attempt - 1))
            try:
                response = self._session.get(
                    url, params=params, headers=self._headers(), timeout=REQUEST_TIMEOUT
                )
            except requests.RequestException as exc:
                failure = type(exc).__name__
                continue
            if response.status_code < 300:
                return response
            failure = f"HTTP {response.status_code}"
            if response.status_code < 500:
                break
        path = urlsplit(url).path
        raise InfrastructureError(
            f"GitHub's API refused GET {path} ({failure}): the fallback's results cannot be "
            "gathered (the token needs `actions: read`)"
        )

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"ciqueue-gha/{__version__}",
        }
