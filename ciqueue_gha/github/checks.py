"""The check run on the pull request's head commit, through GitHub's REST API.

One check run per build: created already completed (`publish`), with its conclusion and
output (title, Markdown summary, optional text) and the first 50 annotations; the rest are
appended by PATCH, 50 a request, the API's limit, each repeating the output's title, summary
and text as the API requires. Or created ``in_progress`` (`start`) and updated as the build
runs, then completed by an update (`update`), the same way (live.py).

Everything is cut to the API's limits before it is sent, with a note where something was
cut, so a huge report cannot get the check run refused.

Retries: a rate limit (403/429 with ``Retry-After``, or with ``x-ratelimit-remaining: 0``
and ``x-ratelimit-reset``) is waited out when it ends within `RATE_LIMIT_WAIT_CAP`, else
given up at once (a summary job must not hang for an hour); 5xx answers and connection
errors are retried with exponential backoff. A 403 or 404 that is no rate limit means the
token may not write checks (a pull request from a fork, no ``checks: write``): that is
`ChecksForbidden`, never retried, and the caller falls back to workflow commands.

A PATCH whose reply was lost and that is then retried appends its annotations twice: the
API has no idempotency key, and a duplicated annotation is better than a missing one.

The token goes into the ``Authorization`` header and nowhere else: it is removed from every
message this module raises or logs.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from .. import __version__
from ..report.annotations import Annotation
from ..truncate import (
    ANNOTATION_TEXT_LIMIT,
    API_REPLY_LIMIT,
    OUTPUT_TEXT_LIMIT,
    TITLE_LIMIT,
    fit_bytes,
    fit_chars,
)

logger = logging.getLogger(__name__)

#: Annotations the API accepts in one request.
ANNOTATIONS_PER_REQUEST = 50
#: The REST API version the requests are written for.
API_VERSION = "2022-11-28"
#: Seconds one request may take before it counts as a connection failure.
REQUEST_TIMEOUT = 30.0
#: Backoff after a 5xx or a connection error: 1, 2, 4, ... seconds, at most 30.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
#: Longest wait for a rate limit to end; a later reset is given up on at once.
RATE_LIMIT_WAIT_CAP = 60.0
#: GitHub's advice for a secondary rate limit that names no time: wait a minute.
SECONDARY_RATE_LIMIT_WAIT = 60.0

CONCLUSIONS = frozenset(
    {"success", "failure", "neutral", "cancelled", "timed_out", "action_required", "skipped"}
)
ANNOTATION_LEVELS = frozenset({"failure", "warning", "notice"})


@dataclass(frozen=True)
class CheckRunReport:
    """What the check run says: its conclusion, output and annotations."""

    name: str
    head_sha: str
    conclusion: str  # one of CONCLUSIONS
    title: str
    summary: str  # Markdown
    text: str | None = None
    annotations: list[Annotation] = field(default_factory=list)


class ChecksError(Exception):
    """The checks API refused a request (a 4xx that retrying will not change)."""


class ChecksForbidden(ChecksError):
    """The token may not write checks (fork pull requests, no `checks: write`)."""


class ChecksUnavailable(ChecksError):
    """The checks API kept failing (5xx, connection errors, rate limits) until we gave up."""


class ChecksClient:
    """Publishes check runs to one repository through the REST API at `api_url`
    (``https://api.github.com``, or ``https://HOST/api/v3`` on GitHub Enterprise Server).

    `sleep` and `clock` are injected so tests wait for nothing; `max_attempts` counts
    every try of one request, the first included."""

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._runs_url = f"{api_url.rstrip('/')}/repos/{_repository_path(repository)}/check-runs"
        self._token = token
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._clock = clock

    def __repr__(self) -> str:
        return f"ChecksClient({self._runs_url!r})"

    def publish(self, report: CheckRunReport) -> int:
        """Create the check run, append the annotations past the first 50; return its id."""
        _check_report(report)
        output = _output(report)
        annotations = [_annotation_body(annotation) for annotation in report.annotations]
        first = annotations[:ANNOTATIONS_PER_REQUEST]
        created = self._request("POST", self._runs_url, _create_body(report, output, first))
        run_id = _run_id(created)
        self._append(run_id, output, annotations, len(first))
        return run_id

    def start(self, name: str, head_sha: str, title: str, summary: str) -> int:
        """Create a check run `in_progress` with `title` and `summary`; return its id."""
        output = _output(CheckRunReport(name, head_sha, "neutral", title, summary))
        body = {"name": name, "head_sha": head_sha, "status": "in_progress", "output": output}
        return _run_id(self._request("POST", self._runs_url, body))

    def update(self, run_id: int, report: CheckRunReport, *, complete: bool = False) -> None:
        """Replace run `run_id`'s output with `report`'s and add its annotations, 50 a
        request; with `complete`, the first request also completes it with the conclusion."""
        _check_report(report)
        output = _output(report)
        annotations = [_annotation_body(annotation) for annotation in report.annotations]
        first = annotations[:ANNOTATIONS_PER_REQUEST]
        body: dict[str, Any] = {"output": {**output, "annotations": first} if first else output}
        if complete:
            body.update(status="completed", conclusion=report.conclusion)
        self._request("PATCH", f"{self._runs_url}/{run_id}", body)
        self._append(run_id, output, annotations, len(first))

    def _append(
        self, run_id: int, output: dict[str, str], annotations: list[dict[str, Any]], sent: int
    ) -> None:
        """PATCH `annotations` past the first `sent` to run `run_id`, 50 a request."""
        try:
            while sent < len(annotations):
                batch = annotations[sent : sent + ANNOTATIONS_PER_REQUEST]
                body = {"output": {**output, "annotations": batch}}
                self._request("PATCH", f"{self._runs_url}/{run_id}", body)
                sent += len(batch)
        except ChecksError as exc:
            raise type(exc)(
                f"{exc} (check run {run_id} has {sent} of {len(annotations)} annotations)"
            ) from None

    def _request(self, method: str, url: str, body: dict[str, Any]) -> requests.Response:
        """One API call, retried as the module docstring says; its successful reply."""
        failure = ""
        for attempt in range(1, self._max_attempts + 1):
            response, failure, wait = self._try(method, url, body, attempt)
            if response is not None:
                return response
            if attempt < self._max_attempts:
                logger.warning(
                    "%s %s failed (%s); retrying in %.1f s (attempt %d of %d)",
                    method, url, failure, wait, attempt, self._max_attempts,
                )  # fmt: skip
                self._sleep(wait)
        raise ChecksUnavailable(
            f"{method} {url}: gave up after {self._max_attempts} attempts; last: {failure}"
        )

    def _try(
        self, method: str, url: str, body: dict[str, Any], attempt: int
    ) -> tuple[requests.Response | None, str, float]:
        """One try: its reply if it succeeded, else what failed and how long to wait before
        the next; raises at once when no retry can help."""
        try:
            response = self._session.request(
                method, url, json=body, headers=self._headers(), timeout=REQUEST_TIMEOUT
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            return None, self._redact(f"{type(exc).__name__}: {exc}"), _backoff(attempt)
        except requests.RequestException as exc:
            raise ChecksError(self._redact(f"{method} {url}: {exc}")) from None
        if response.status_code < 300:
            return response, "", 0.0
        failure = f"HTTP {response.status_code}: {self._message(response)}"
        wait = self._retry_wait(response, attempt)
        if wait is None:
            raise self._refusal(method, url, response)
        if wait > RATE_LIMIT_WAIT_CAP:
            raise ChecksUnavailable(
                f"{method} {url}: {failure}; rate limited for {wait:.0f} s more, "
                f"longer than the {RATE_LIMIT_WAIT_CAP:.0f} s we wait"
            )
        return None, failure, wait

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"ciqueue-gha/{__version__}",
        }

    def _retry_wait(self, response: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `response`'s request; None: do not retry."""
        status = response.status_code
        if status >= 500:
            return _backoff(attempt)
        if status not in (403, 429):
            return None
        wait = self._rate_limit_wait(response)
        if wait is None and status == 429:
            return _backoff(attempt)
        return wait

    def _rate_limit_wait(self, response: requests.Response) -> float | None:
        """How long `response` asks us to wait, or None when it is no rate limit."""
        retry_after = _seconds_after(response.headers.get("Retry-After"), self._clock)
        if retry_after is not None:
            return retry_after
        reset = response.headers.get("x-ratelimit-reset")
        if response.headers.get("x-ratelimit-remaining") == "0" and reset is not None:
            try:
                return max(float(reset) - self._clock(), 1.0)
            except ValueError:
                return SECONDARY_RATE_LIMIT_WAIT
        if "rate limit" in self._message(response).lower():
            return SECONDARY_RATE_LIMIT_WAIT
        return None

    def _refusal(self, method: str, url: str, response: requests.Response) -> ChecksError:
        status = response.status_code
        message = f"{method} {url}: HTTP {status}: {self._message(response)}"
        if status in (403, 404):
            return ChecksForbidden(
                f"{message}; the token may not write checks "
                "(a pull request from a fork, or no `checks: write` permission)"
            )
        return ChecksError(message)

    def _message(self, response: requests.Response) -> str:
        """GitHub's own word on a failed request, short and without the token."""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        message = payload.get("message") if isinstance(payload, dict) else None
        text = str(message) if message else response.text or response.reason or ""
        return self._redact(fit_chars(" ".join(text.split()), API_REPLY_LIMIT))

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _repository_path(repository: str) -> str:
    owner, _, name = repository.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"repository must be OWNER/NAME, not {repository!r}")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def _backoff(attempt: int) -> float:
    return float(min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP))


def _seconds_after(value: str | None, clock: Callable[[], float]) -> float | None:
    """A ``Retry-After`` value (seconds, or an HTTP date) as seconds from now."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - clock(), 0.0)


def _check_report(report: CheckRunReport) -> None:
    if report.conclusion not in CONCLUSIONS:
        raise ValueError(f"conclusion must be one of {sorted(CONCLUSIONS)}: {report.conclusion!r}")
    for annotation in report.annotations:
        if annotation.annotation_level not in ANNOTATION_LEVELS:
            raise ValueError(
                f"annotation_level must be one of {sorted(ANNOTATION_LEVELS)}: "
                f"{annotation.annotation_level!r}"
            )


def _output(report: CheckRunReport) -> dict[str, str]:
    """The output's title, summary and text, cut to the API's limits."""
    output = {
        "title": fit_chars(report.title, TITLE_LIMIT),
        "summary": fit_bytes(report.summary, OUTPUT_TEXT_LIMIT, "summary"),
    }
    if report.text is not None:
        output["text"] = fit_bytes(report.text, OUTPUT_TEXT_LIMIT, "text")
    return output


def _create_body(
    report: CheckRunReport, output: dict[str, str], annotations: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": report.name,
        "head_sha": report.head_sha,
        "status": "completed",
        "conclusion": report.conclusion,
        "output": {**output, "annotations": annotations} if annotations else output,
    }


def _annotation_body(annotation: Annotation) -> dict[str, Any]:
    """`annotation` as the API takes it: lines sane, texts within their limits."""
    start = max(annotation.start_line, 1)
    body: dict[str, Any] = {
        "path": annotation.path,
        "start_line": start,
        "end_line": max(annotation.end_line, start),
        "annotation_level": annotation.annotation_level,
        "message": fit_bytes(annotation.message, ANNOTATION_TEXT_LIMIT, "message"),
    }
    if annotation.title is not None:
        body["title"] = fit_chars(annotation.title, TITLE_LIMIT)
    if annotation.raw_details is not None:
        body["raw_details"] = fit_bytes(annotation.raw_details, ANNOTATION_TEXT_LIMIT, "details")
    return body


def _run_id(response: requests.Response) -> int:
    """The id in the reply to a create."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    run_id = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        raise ChecksError(
            f"the check run was created (HTTP {response.status_code}) but the reply has no id"
        )
    return run_id
