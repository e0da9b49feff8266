"""A loopback HTTP server standing in for GitHub's checks API, strict about what it is sent.

Every request body is checked against GitHub's published API description, as githubkit
generates it (githubkit-schemas for API version 2022-11-28, the version the client asks for):

- POST /repos/{owner}/{repo}/check-runs must match exactly one of the ``oneOf`` branches
  ``ReposOwnerRepoCheckRunsPostBodyOneof0`` (status "completed", conclusion required) and
  ``ReposOwnerRepoCheckRunsPostBodyOneof1`` (any other status);
- PATCH /repos/{owner}/{repo}/check-runs/{id} must match one of the ``anyOf`` branches
  ``ReposOwnerRepoCheckRunsCheckRunIdPatchBodyAnyof0`` / ``...Anyof1``.

Each is validated in pydantic's strict mode, so ``"1"`` is no line number. The generated
models ignore (or allow) unknown keys and accept ``null`` for optional fields, which the
description does not, so two checks of our own are added: every key must be a field of its
model, and no value may be null. So are the limits the description states only in words:
an annotation's title at most 255 characters, its message and raw details at most 64 KB, its
lines 1-based and in order, and a PATCH's output title (marked **Required**).

The Actions endpoints the fallback summary reads (a run's jobs and artifacts) are
fake_actions.py's, requests and replies checked alike.

A body that fails is answered 422, as GitHub would, and kept in `invalid`; the fixture that
owns the server fails the test if anything is left there. Replies are scripted per test with
`script`; past the script, a create answers 201 with `RUN_ID` and an update answers 200.
"""

from __future__ import annotations

import json
import re
import threading
import typing
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydantic
from githubkit_schemas.v2022_11_28.models import (
    ReposOwnerRepoCheckRunsCheckRunIdPatchBodyAnyof0,
    ReposOwnerRepoCheckRunsCheckRunIdPatchBodyAnyof1,
    ReposOwnerRepoCheckRunsPostBodyOneof0,
    ReposOwnerRepoCheckRunsPostBodyOneof1,
)

from tests.support.fake_actions import FakeActions, GetReply

RUN_ID = 4242

CREATE_PATH = re.compile(r"^(?P<prefix>/api/v3)?/repos/[^/]+/[^/]+/check-runs$")
UPDATE_PATH = re.compile(r"^(?P<prefix>/api/v3)?/repos/[^/]+/[^/]+/check-runs/\d+$")
CREATE_BODIES = (ReposOwnerRepoCheckRunsPostBodyOneof0, ReposOwnerRepoCheckRunsPostBodyOneof1)
UPDATE_BODIES = (
    ReposOwnerRepoCheckRunsCheckRunIdPatchBodyAnyof0,
    ReposOwnerRepoCheckRunsCheckRunIdPatchBodyAnyof1,
)
ANNOTATION_TITLE_LIMIT = 255
ANNOTATION_TEXT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    """A scripted answer; `drop` closes the connection without answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def validate(method: str, path: str, raw: bytes) -> list[str]:
    """What is wrong with a request body, by GitHub's API description; empty if nothing."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    if method == "POST" and CREATE_PATH.match(path):
        return _one_of(CREATE_BODIES, raw, body, exactly_one=True) + _limits(body, patch=False)
    if method == "PATCH" and UPDATE_PATH.match(path):
        return _one_of(UPDATE_BODIES, raw, body, exactly_one=False) + _limits(body, patch=True)
    return [f"no such endpoint: {method} {path}"]


def _one_of(
    models: tuple[type[pydantic.BaseModel], ...], raw: bytes, body: Any, *, exactly_one: bool
) -> list[str]:
    problems: dict[str, list[str]] = {}
    for model in models:
        try:
            model.model_validate_json(raw, strict=True)
        except pydantic.ValidationError as exc:
            problems[model.__name__] = [str(exc)]
            continue
        problems[model.__name__] = _unknown_keys(model, body, "body") + _nulls(body, "body")
    matched = [name for name, found in problems.items() if not found]
    if len(matched) == 1 or (matched and not exactly_one):
        return []
    if matched:
        return [f"matches more than one of oneOf: {matched}"]
    return [f"{name}: {found}" for name, found in problems.items()]


def _unknown_keys(model: type[pydantic.BaseModel], data: Any, where: str) -> list[str]:
    """Keys of `data` that are no field of `model`, at any depth."""
    if isinstance(data, list):
        return [
            p for i, item in enumerate(data) for p in _unknown_keys(model, item, f"{where}[{i}]")
        ]
    if not isinstance(data, dict):
        return []
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    problems = []
    for key, value in data.items():
        if key not in fields:
            problems.append(f"{where}.{key}: not a field of {model.__name__}")
            continue
        for nested in _models_in(fields[key].annotation):
            problems += _unknown_keys(nested, value, f"{where}.{key}")
    return problems


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic models a field's type names, through unions and lists."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _nulls(data: Any, where: str) -> list[str]:
    if data is None:
        return [f"{where}: null, which no field of these bodies may be"]
    if isinstance(data, dict):
        return [p for key, value in data.items() for p in _nulls(value, f"{where}.{key}")]
    if isinstance(data, list):
        return [p for i, item in enumerate(data) for p in _nulls(item, f"{where}[{i}]")]
    return []


def _limits(body: Any, *, patch: bool) -> list[str]:
    """The limits the description states in words rather than in the schema."""
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, dict):
        return []
    problems = ["output.title: **Required**"] if patch and "title" not in output else []
    for i, annotation in enumerate(output.get("annotations") or []):
        if isinstance(annotation, dict):
            problems += [f"output.annotations[{i}]: {p}" for p in _annotation_limits(annotation)]
    return problems


def _annotation_limits(annotation: dict[str, Any]) -> list[str]:
    problems = []
    if len(annotation.get("title") or "") > ANNOTATION_TITLE_LIMIT:
        problems.append("title over 255 characters")
    for key in ("message", "raw_details"):
        if len(str(annotation.get(key) or "").encode("utf-8")) > ANNOTATION_TEXT_LIMIT:
            problems.append(f"{key} over 64 KB")
    start, end = annotation.get("start_line"), annotation.get("end_line")
    if isinstance(start, int) and isinstance(end, int) and not 1 <= start <= end:
        problems.append(f"lines {start}..{end}: not 1-based and in order")
    return problems


class FakeGitHub:
    """The server: `url` to point a client at, `requests` received, `invalid` bodies refused."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.invalid: list[tuple[Request, list[str]]] = []
        self.script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.actions = FakeActions(self.url)  # the GET endpoints: runs' jobs and artifacts

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeGitHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Record the request and choose its reply: 422 for an invalid body, else the script."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        request = Request(method, path, headers, body)
        problems = validate(method, path, raw)
        with self._lock:
            self.requests.append(request)
            if problems:
                self.invalid.append((request, problems))
                return Reply(422, {"message": "Invalid request.", "errors": problems})
            if self.script:
                return self.script.popleft()
        if method == "POST":
            return Reply(201, {"id": RUN_ID, "status": "completed"})
        return Reply(200, {"id": int(path.rsplit("/", 1)[1]), "status": "completed"})

    def answer_get(self, path: str, headers: dict[str, str]) -> GetReply:
        """Record a GET and answer it from `actions`; 422 for a request or reply GitHub's
        description does not allow (kept in `invalid`)."""
        reply, problems = self.actions.answer(path, headers)
        request = Request("GET", path, headers, None)
        with self._lock:
            self.requests.append(request)
            if problems:
                self.invalid.append((request, problems))
                return GetReply(422, {"message": "Invalid request.", "errors": problems})
        return reply


def _handler(github: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._serve()

        def do_PATCH(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply = github.answer_get(self.path, headers)
            payload = reply.data if reply.data is not None else json.dumps(reply.body).encode()
            kind = "application/zip" if reply.data is not None else "application/json"
            self.send_response(reply.status)
            for key, value in {**reply.headers, "Content-Type": kind}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply = github.answer(self.command, self.path, headers, raw)
            if reply.drop:
                self.close_connection = True
                return
            payload = json.dumps(reply.body).encode() if reply.body is not None else b""
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    return Handler
