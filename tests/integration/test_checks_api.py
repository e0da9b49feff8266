"""The check run client against a local stand-in for GitHub's API, every body validated.

The server (tests/support/fake_github.py) checks each request body against GitHub's API
description as githubkit generates it and refuses what does not match; the `github` fixture
fails any test that sent such a body. Time is a fake clock: nothing here really sleeps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ciqueue_gha.github.checks import (
    CheckRunReport,
    ChecksClient,
    ChecksError,
    ChecksForbidden,
    ChecksUnavailable,
)
from ciqueue_gha.report.annotations import Annotation
from tests.support.fake_github import RUN_ID, FakeGitHub, Reply, Request, validate
from tests.support.ports import reserve_port

TOKEN = "ghs_s3cr3tT0kenN0bodyMayS33"
REPOSITORY = "octo-org/octo-repo"
SHA = "0123456789abcdef0123456789abcdef01234567"
CREATE = f"/repos/{REPOSITORY}/check-runs"
UPDATE = f"{CREATE}/{RUN_ID}"


class FakeTime:
    """A clock that only moves when the client sleeps; every sleep recorded."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub().start()
    yield server
    server.stop()
    assert not server.invalid, f"bodies GitHub would refuse: {server.invalid}"


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(github: FakeGitHub, fake_time: FakeTime) -> ChecksClient:
    return _client(github.url, fake_time)


def _client(api_url: str, fake_time: FakeTime, **options: Any) -> ChecksClient:
    return ChecksClient(
        api_url, REPOSITORY, TOKEN, sleep=fake_time.sleep, clock=fake_time.clock, **options
    )


def failures(count: int) -> list[Annotation]:
    return [
        Annotation(
            path=f"tests/test_mod{i % 7}.py",
            start_line=10 + i,
            end_line=10 + i,
            annotation_level="failure",
            message=f"AssertionError: failure number {i}\n\nassert {i} == -1",
            title=f"tests/test_mod{i % 7}.py::test_{i}",
            raw_details=f"captured output of {i}" if i % 2 else None,
        )
        for i in range(count)
    ]


def report(annotations: list[Annotation] | None = None, **changes: Any) -> CheckRunReport:
    fields: dict[str, Any] = {
        "name": "ciqueue-gha",
        "head_sha": SHA,
        "conclusion": "failure" if annotations else "success",
        "title": "3 failed, 97 passed",
        "summary": "## Tests\n\n| passed | failed |\n|---|---|\n| 97 | 3 |\n",
        "annotations": annotations or [],
    }
    fields.update(changes)
    return CheckRunReport(**fields)


def sent_annotations(requests_seen: list[Request]) -> list[dict[str, Any]]:
    return [a for r in requests_seen for a in r.body["output"].get("annotations", [])]


@pytest.mark.parametrize(
    ("count", "patches"), [(0, 0), (1, 0), (50, 0), (51, 1), (500, 9)], ids=lambda v: str(v)
)
def test_annotations_go_fifty_a_request_each_exactly_once(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime, count: int, patches: int
) -> None:
    annotations = failures(count)

    run_id = client.publish(report(annotations, text="details"))

    assert run_id == RUN_ID
    create, *updates = github.requests
    assert (create.method, create.path) == ("POST", CREATE)
    assert [(r.method, r.path) for r in updates] == [("PATCH", UPDATE)] * patches
    assert create.body["status"] == "completed"
    assert create.body["conclusion"] == ("failure" if count else "success")
    assert create.body["head_sha"] == SHA
    if count == 0:
        assert "annotations" not in create.body["output"]
    assert len(create.body["output"].get("annotations", [])) == min(count, 50)
    assert all(len(r.body["output"]["annotations"]) <= 50 for r in updates)
    for update in updates:
        # The API requires title and summary on every update; text is repeated so the
        # output is the same whichever request GitHub saw last.
        assert {k: v for k, v in update.body["output"].items() if k != "annotations"} == {
            k: v for k, v in create.body["output"].items() if k != "annotations"
        }
        assert set(update.body) == {"output"}
    sent = sent_annotations(github.requests)
    assert [a["message"] for a in sent] == [a.message for a in annotations]
    assert [(a["path"], a["start_line"]) for a in sent] == [
        (a.path, a.start_line) for a in annotations
    ]
    assert fake_time.sleeps == []


def test_every_request_carries_the_api_headers(github: FakeGitHub, client: ChecksClient) -> None:
    client.publish(report(failures(60)))

    assert len(github.requests) == 2
    for request in github.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        assert request.headers["user-agent"].startswith("ciqueue-gha/")
        assert request.headers["content-type"] == "application/json"


def test_enterprise_server_api_url_is_joined_under_its_path(
    github: FakeGitHub, fake_time: FakeTime
) -> None:
    client = _client(f"{github.url}/api/v3/", fake_time)

    client.publish(report(failures(51)))

    assert [r.path for r in github.requests] == [f"/api/v3{CREATE}", f"/api/v3{UPDATE}"]


def test_403_without_permission_is_forbidden_and_not_retried(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    github.script.append(Reply(403, {"message": "Resource not accessible by integration"}))

    with pytest.raises(ChecksForbidden, match="Resource not accessible by integration"):
        client.publish(report(failures(3)))

    assert len(github.requests) == 1
    assert fake_time.sleeps == []


def test_404_on_create_is_forbidden_and_not_retried(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    github.script.append(Reply(404, {"message": "Resource not accessible by integration"}))

    with pytest.raises(ChecksForbidden, match="checks: write"):
        client.publish(report())

    assert len(github.requests) == 1
    assert fake_time.sleeps == []


def test_429_with_retry_after_waits_that_long_then_succeeds(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    github.script.append(Reply(429, {"message": "slow down"}, {"Retry-After": "7"}))

    assert client.publish(report(failures(2))) == RUN_ID

    assert fake_time.sleeps == [7.0]
    assert [r.method for r in github.requests] == ["POST", "POST"]
    assert github.requests[0].body == github.requests[1].body


def test_403_with_exhausted_rate_limit_waits_until_the_reset(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    reset = int(fake_time.now) + 12
    github.script.append(
        Reply(
            403,
            {"message": "API rate limit exceeded for installation."},
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        )
    )

    assert client.publish(report(failures(70))) == RUN_ID

    assert fake_time.sleeps == [12.0]
    assert [r.method for r in github.requests] == ["POST", "POST", "PATCH"]


def test_secondary_rate_limit_without_headers_waits_a_minute(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    github.script.append(Reply(403, {"message": "You have exceeded a secondary rate limit."}))

    assert client.publish(report()) == RUN_ID

    assert fake_time.sleeps == [60.0]


def test_a_rate_limit_ending_too_late_is_given_up_at_once(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    reset = int(fake_time.now) + 3600
    github.script.append(
        Reply(
            429,
            {"message": "rate"},
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        )
    )

    with pytest.raises(ChecksUnavailable, match="rate limited for 3600 s more"):
        client.publish(report())

    assert len(github.requests) == 1
    assert fake_time.sleeps == []


def test_502_then_success_retries_after_a_backoff(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    github.script.append(Reply(502, {"message": "Server Error"}))

    assert client.publish(report(failures(1))) == RUN_ID

    assert [r.method for r in github.requests] == ["POST", "POST"]
    assert fake_time.sleeps == [1.0]


def test_502_on_an_update_retries_that_update_only(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    github.script.extend([Reply(201, {"id": RUN_ID}), Reply(502, {"message": "Bad Gateway"})])

    client.publish(report(failures(120)))

    assert [r.method for r in github.requests] == ["POST", "PATCH", "PATCH", "PATCH"]
    assert github.requests[1].body == github.requests[2].body
    accepted = [github.requests[0], *github.requests[2:]]
    assert [a["message"] for a in sent_annotations(accepted)] == [a.message for a in failures(120)]
    assert fake_time.sleeps == [1.0]


def test_a_dropped_connection_is_retried(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    github.script.append(Reply(drop=True))

    assert client.publish(report()) == RUN_ID

    assert len(github.requests) == 2
    assert fake_time.sleeps == [1.0]


def test_5xx_forever_gives_up_after_max_attempts_with_exponential_backoff(
    github: FakeGitHub, fake_time: FakeTime
) -> None:
    client = _client(github.url, fake_time, max_attempts=4)
    github.script.extend([Reply(503, {"message": "Service Unavailable"})] * 4)

    with pytest.raises(ChecksUnavailable, match=r"gave up after 4 attempts.*HTTP 503"):
        client.publish(report())

    assert len(github.requests) == 4
    assert fake_time.sleeps == [1.0, 2.0, 4.0]


def closed_port_url() -> str:
    """A loopback URL nothing listens on (a reserved port: no other test process takes it)."""
    return f"http://127.0.0.1:{reserve_port()}"


def test_an_unreachable_api_gives_up_with_a_clear_error(fake_time: FakeTime) -> None:
    client = _client(closed_port_url(), fake_time, max_attempts=3)

    with pytest.raises(ChecksUnavailable, match=r"gave up after 3 attempts.*ConnectionError"):
        client.publish(report())

    assert fake_time.sleeps == [1.0, 2.0]


def test_a_refused_body_is_an_error_not_retried(
    github: FakeGitHub, client: ChecksClient, fake_time: FakeTime
) -> None:
    github.script.append(Reply(422, {"message": "Validation Failed"}))

    with pytest.raises(ChecksError, match="HTTP 422: Validation Failed") as raised:
        client.publish(report())

    assert type(raised.value) is ChecksError
    assert len(github.requests) == 1
    assert fake_time.sleeps == []


def test_a_failed_update_says_how_far_the_check_run_got(
    github: FakeGitHub, client: ChecksClient
) -> None:
    github.script.extend([Reply(201, {"id": RUN_ID}), Reply(200), Reply(403, {"message": "no"})])

    with pytest.raises(ChecksForbidden, match=f"check run {RUN_ID} has 100 of 160 annotations"):
        client.publish(report(failures(160)))


def test_a_summary_over_the_limit_is_cut_and_still_valid(
    github: FakeGitHub, client: ChecksClient
) -> None:
    summary = "".join(f"| tests/test_{i}.py::test_case | failed |\n" for i in range(4000))
    text = "€" * 30_000  # 90,000 bytes in 30,000 characters
    assert len(summary) > 65_535

    client.publish(report(summary=summary, text=text))

    output = github.requests[0].body["output"]
    assert len(output["summary"].encode()) <= 65_535
    assert len(output["text"].encode()) <= 65_535
    head, note = output["summary"].rsplit("\n\n", 1)
    assert summary.startswith(head + "\n")  # cut at a line, the head kept as it was
    assert "summary cut" in note
    assert len(head) > 60_000
    text_head = output["text"].rsplit("\n\n", 1)[0]
    assert set(text_head) == {"€"} and len(text_head) > 21_000  # cut between characters
    assert "text cut" in output["text"]


def test_a_summary_at_the_limit_is_sent_as_it_is_one_more_is_cut(
    github: FakeGitHub, client: ChecksClient
) -> None:
    client.publish(report(summary="x" * 65_535))
    client.publish(report(summary="x" * 65_536))

    at_limit, over = (r.body["output"]["summary"] for r in github.requests)
    assert at_limit == "x" * 65_535
    assert len(over.encode()) <= 65_535 and over.endswith("GitHub takes 65,535)")


def test_annotations_are_held_to_the_api_limits(github: FakeGitHub, client: ChecksClient) -> None:
    huge = Annotation(
        path="tests/test_big.py",
        start_line=0,
        end_line=-3,
        annotation_level="warning",
        message="m" * 100_000,
        title="t" * 1_000,
        raw_details="ü" * 50_000,
    )
    backwards = Annotation("tests/test_a.py", 9, 4, "notice", "lines the wrong way")

    client.publish(report([huge, backwards]))

    sent = sent_annotations(github.requests)
    assert (sent[0]["start_line"], sent[0]["end_line"]) == (1, 1)
    assert (sent[1]["start_line"], sent[1]["end_line"]) == (9, 9)
    assert len(sent[0]["message"].encode()) <= 64 * 1024 and "message cut" in sent[0]["message"]
    assert len(sent[0]["raw_details"].encode()) <= 64 * 1024
    assert len(sent[0]["title"]) == 255
    assert "title" not in sent[1] and "raw_details" not in sent[1]


def test_a_conclusion_the_api_does_not_take_is_refused_before_any_request(
    github: FakeGitHub, client: ChecksClient
) -> None:
    with pytest.raises(ValueError, match="conclusion"):
        client.publish(report(conclusion="stale"))
    with pytest.raises(ValueError, match="annotation_level"):
        client.publish(report([Annotation("a.py", 1, 1, "error", "m")]))

    assert github.requests == []


def test_the_token_appears_in_no_error_or_log(
    github: FakeGitHub, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(github.url, fake_time, max_attempts=2)
    # GitHub echoing the token back is far-fetched; it shows the redaction works.
    github.script.extend(
        [
            Reply(403, {"message": f"Bad credentials {TOKEN}"}),
            Reply(502, {"message": f"oops {TOKEN}"}),
            Reply(502, {"message": f"oops {TOKEN}"}),
            Reply(422, {"message": f"invalid {TOKEN}"}),
        ]
    )
    raised: list[ChecksError] = []
    for _ in range(3):
        with pytest.raises(ChecksError) as info:
            client.publish(report())
        raised.append(info.value)
    unreachable = _client(closed_port_url(), fake_time, max_attempts=1)
    with pytest.raises(ChecksUnavailable) as info:
        unreachable.publish(report())
    raised.append(info.value)

    assert [type(e) for e in raised] == [
        ChecksForbidden,
        ChecksUnavailable,
        ChecksError,
        ChecksUnavailable,
    ]
    for error in raised:
        assert TOKEN not in str(error) and TOKEN not in repr(error)
        assert "***" in str(error) or error is raised[-1]
    assert "retrying" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client)


def test_the_server_refuses_what_github_would(github: FakeGitHub) -> None:
    """The validation itself can fail: each of these bodies breaks the API description."""
    annotation = {
        "path": "a.py",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "failure",
        "message": "m",
    }
    good = {
        "name": "ciqueue-gha",
        "head_sha": SHA,
        "status": "completed",
        "conclusion": "failure",
        "output": {"title": "t", "summary": "s", "annotations": [annotation]},
    }
    assert validate("POST", CREATE, json.dumps(good).encode()) == []

    def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(json.dumps(good))
        target: Any = body
        for key in path[:-1]:
            target = target[key] if not key.isdigit() else target[int(key)]
        target[path[-1]] = value
        return body

    bad_creates = [
        changed(("unknown",), 1),
        changed(("conclusion",), "stale-ish"),
        changed(("status",), "done"),
        changed(("output", "summary"), "s" * 65_536),
        changed(("output", "text"), None),
        changed(("output", "annotations"), [annotation] * 51),
        changed(("output", "annotations", "0", "line"), 3),
        changed(("output", "annotations", "0", "start_line"), "1"),
        changed(("output", "annotations", "0", "annotation_level"), "error"),
        changed(("output", "annotations", "0", "title"), "t" * 256),
        changed(("output", "annotations", "0", "message"), "m" * (64 * 1024 + 1)),
        changed(("output", "annotations", "0", "start_line"), 0),
    ]
    for body in bad_creates:
        assert validate("POST", CREATE, json.dumps(body).encode()), body
    assert (
        validate("PATCH", UPDATE, json.dumps({"output": {"title": "t", "summary": "s"}}).encode())
        == []
    )
    assert validate("PATCH", UPDATE, json.dumps({"output": {"summary": "s"}}).encode())
    assert validate("PATCH", UPDATE, json.dumps({"output": {"title": "t"}}).encode())
    assert validate("PUT", UPDATE, b"{}")

    # Through HTTP too: refused with 422 and recorded, as the fixture's check relies on.
    answer = requests.post(f"{github.url}{CREATE}", json=bad_creates[0], timeout=5)
    assert answer.status_code == 422
    assert len(github.invalid) == 1
    github.invalid.clear()
