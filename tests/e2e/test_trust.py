"""Quarantine and the flaky history through the CLI, on a real redis-server: `run` builds of
a small suite (suites/trust) whose failures the environment picks, `quarantine` and `flaky`.

Each test keeps its history and quarantine apart under a repository of its own
(GITHUB_REPOSITORY, as a GitHub job names it)."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import redis

from ciqueue_gha.errors import EXIT_FAILED, EXIT_PASSED, EXIT_USAGE
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.redis_server import PrivateRedis
from ciqueue_gha.report.markdown import code, text
from tests.e2e.test_runner import Command, Commands, clean_env, cli, copy_suite, new_build_id
from tests.e2e.test_runner import commands as commands  # the fixture

NAMED = "check_trust.py::test_named[{}]"
ALTERNATE = "check_trust.py::test_alternate"


def failure(out: str, test: str) -> str:
    """What the summary's log says of the failure of `test`: its line, standing, traceback."""
    blocks = out.split("FAILED ")
    found = [block for block in blocks if block.startswith(f"{test} ")]
    assert len(found) == 1, out
    return found[0]


class Builds:
    """`ciqueue-gha` commands against one Redis, for one repository's builds of the suite."""

    def __init__(self, commands: Commands, tmp: Path, redis_url: str, name: str) -> None:
        self.commands, self.tmp, self.redis_url = commands, tmp, redis_url
        self.suite = copy_suite("trust", tmp)
        self.repository = f"trust/{name}-{os.getpid()}"
        self.count = 0

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(self.tmp, GITHUB_REPOSITORY=self.repository, **extra)

    def run(self, *options: str, workers: int = 1, **env: str) -> Command:
        """One build of the suite; its job summary in summary-N.md."""
        self.count += 1
        argv = [*cli(), "run", "--workers", str(workers), "--redis-url", self.redis_url]
        if "--build-id" not in options:
            argv += ["--build-id", new_build_id("trust")]
        argv += ["--junit-xml", str(self.junit), *options]
        summary = self.summary_path
        summary.unlink(missing_ok=True)
        environ = self.env(GITHUB_STEP_SUMMARY=str(summary), **env)
        return self.commands.run(f"build-{self.count}", argv, cwd=self.suite, env=environ)

    def cli(self, name: str, *args: str) -> Command:
        argv = [*cli(), *args, "--redis-url", self.redis_url]
        return self.commands.run(name, argv, cwd=self.suite, env=self.env())

    @property
    def junit(self) -> Path:
        return self.tmp / f"merged-{self.count}.xml"

    @property
    def summary_path(self) -> Path:
        return self.tmp / f"summary-{self.count}.md"

    def properties(self) -> dict[str, dict[str, str]]:
        """Each testcase's properties in the last build's JUnit, by its name."""
        return {
            case.get("name", ""): {
                p.get("name", ""): p.get("value", "") for p in case.iter("property")
            }
            for case in ET.parse(self.junit).getroot().iter("testcase")
        }


@pytest.fixture
def builds(
    commands: Commands, tmp_path: Path, redis_server: PrivateRedis, request: pytest.FixtureRequest
) -> Builds:
    return Builds(commands, tmp_path, redis_server.url, request.node.name[:40])


def test_quarantined_failures_from_the_file_and_redis_pass_the_build(builds: Builds) -> None:
    added = builds.cli(
        "add",
        "quarantine",
        "add",
        NAMED.format("kept"),
        "--until",
        "2999-12-31",
        "--reason",
        "kept in Redis",
    )
    assert added.process.returncode == EXIT_PASSED, added.output()
    listed = builds.cli("list", "quarantine", "list")
    assert (
        listed.stdout.read_text() == f"{NAMED.format('kept')}  until 2999-12-31  # kept in Redis\n"
    )
    quarantine = builds.tmp / "quarantine.txt"
    quarantine.write_text(
        "# known flaky on CI\n\n"
        f"{NAMED.format('quarantined')}  # the exact id\n"
        "*net_*  until 2999-01-31  # a glob: the network is flaky\n"
    )

    build = builds.run("--quarantine", str(quarantine), TRUST_FAIL="net_a,net_b,quarantined,kept")

    assert build.process.returncode == EXIT_PASSED, build.output()
    out = build.stdout.read_text()
    for name in ("net_a", "net_b", "quarantined", "kept"):
        assert "standing: quarantined" in failure(out, NAMED.format(name)), out
        assert f"QUARANTINED FAILED {NAMED.format(name)} " in out, out
    assert "the network is flaky" in out and "kept in Redis" in out
    summary = builds.summary_path.read_text()
    assert "✅ passed" in summary
    assert "### Quarantined failures, not failing the build (4)" in summary
    assert "### Failures" not in summary
    properties = builds.properties()
    assert (
        properties["test_named[net_a]"]["quarantined"]
        == "*net_*  until 2999-01-31  # a glob: the network is flaky"
    )
    assert properties["test_named[kept]"]["quarantined"].startswith(NAMED.format("kept"))
    assert "quarantined" not in properties["test_named[new]"]

    # A worker job is not failed by them either (on GitHub, each worker is a job of its own).
    worker = [*cli(), "worker", "--redis-url", builds.redis_url, "--build-id", new_build_id("w")]
    env = builds.env(TRUST_FAIL="net_b,kept")
    alone = builds.commands.run(
        "worker", [*worker, "--quarantine", str(quarantine)], cwd=builds.suite, env=env
    )
    assert alone.process.returncode == EXIT_PASSED, alone.output()

    removed = builds.cli("remove", "quarantine", "remove", NAMED.format("kept"))
    assert removed.process.returncode == EXIT_PASSED, removed.output()
    assert builds.cli("list-after", "quarantine", "list").stdout.read_text() == ""


def test_an_expired_entry_no_longer_applies_and_fails_the_build(builds: Builds) -> None:
    quarantine = builds.tmp / "quarantine.txt"
    quarantine.write_text(f"{NAMED.format('expired')}  until 2020-01-31  # fixed long ago?\n")

    build = builds.run("--quarantine", str(quarantine), TRUST_FAIL="expired")

    assert build.process.returncode == EXIT_FAILED, build.output()
    out = build.stdout.read_text()
    standing = "standing: quarantine expired (until 2020-01-31): fixed long ago?"
    assert standing in failure(out, NAMED.format("expired")), out
    assert f"QUARANTINE EXPIRED {NAMED.format('expired')}: until 2020-01-31 ({quarantine}:1)" in out
    summary = builds.summary_path.read_text()
    assert "❌ failed" in summary and "### Failures (1)" in summary
    assert "### Expired quarantine entries, no longer applied (1)" in summary


@pytest.mark.parametrize(
    ("command", "line", "says"),
    [
        ("summary", "check_trust.py::test_ok  for 2027-01-31", "expected TEST-ID-OR-GLOB [until"),
        ("run", "check_trust.py::test_ok  until 2027-02-30", "'2027-02-30' is not a date: use"),
        ("worker", "check_trust.py::test_ok  until", "expected TEST-ID-OR-GLOB"),
    ],
)
def test_a_malformed_line_is_one_line_naming_the_file_and_line(
    builds: Builds, command: str, line: str, says: str
) -> None:
    quarantine = builds.tmp / "bad.txt"
    quarantine.write_text(f"# fine\ncheck_trust.py::test_ok\n{line}\n")
    done = builds.cli(command, command, "--build-id", "never", "--quarantine", str(quarantine))
    assert done.process.returncode == EXIT_USAGE, done.output()
    err = done.stderr.read_text()
    assert err.count("\n") == 1 and f"{quarantine}:3: {says}" in err, err
    assert "Traceback" not in done.output()


def test_history_tells_a_known_flaky_test_from_a_new_failure(builds: Builds) -> None:
    """test_alternate fails in odd builds: in the fifth it is known flaky at 50% (2 of the 4
    builds before); test_named[new] fails for the first time there: new."""
    for number in range(1, 5):
        build = builds.run(TRUST_BUILD=str(number))
        assert build.process.returncode == (EXIT_FAILED if number % 2 else EXIT_PASSED), (
            build.output()
        )

    fifth = builds.run(TRUST_BUILD="5", TRUST_FAIL="new")

    assert fifth.process.returncode == EXIT_FAILED, fifth.output()
    out = fifth.stdout.read_text()
    known = "known flaky: failed in 2 of 4 recent builds (50%)"
    assert f"standing: {known}\n" in failure(out, ALTERNATE), out
    new = "standing: new failure: never failed in its recent builds\n"
    assert new in failure(out, NAMED.format("new")), out
    summary = builds.summary_path.read_text()
    assert f"{code(ALTERNATE)} ({text(known)})" in summary, summary
    assert builds.properties()["test_alternate"]["ciqueue-standing"] == known

    listed = builds.cli("flaky", "flaky", "--json")
    assert listed.process.returncode == EXIT_PASSED, listed.output()
    flaky = json.loads(listed.stdout.read_text())
    rates = {ALTERNATE: "failed in 3 of 5 recent builds (60%)"}
    rates[NAMED.format("new")] = "failed in 1 of 5 recent builds (20%)"
    assert flaky == {
        "repository": builds.repository,
        "tests": [
            {"test": ALTERNATE, "rate": 0.6, "builds": 5, "passed": 2, "failed": 3, "flaky": 0},
            {
                "test": NAMED.format("new"),
                "rate": 0.2,
                "builds": 5,
                "passed": 4,
                "failed": 1,
                "flaky": 0,
            },
        ],
        "quarantine": [f"{test}  # {rate}" for test, rate in rates.items()],
    }
    shown = builds.cli("flaky-text", "flaky", "--limit", "1").stdout.read_text()
    assert f"60%  {ALTERNATE}" in shown and NAMED.format("new") not in shown, shown
    assert shown.endswith(f"\n{ALTERNATE}  # {rates[ALTERNATE]}\n"), shown


def test_repeat_new_catches_a_new_test_failing_one_run_in_three(
    builds: Builds, client: redis.Redis
) -> None:
    """The first build records the suite; in the second, two tests the history never saw run
    three times each: one fails its second run (a counter file decides), and is reported as
    new flaky and fails the build; the other passes three times and counts once."""
    first = builds.run("--repeat-new", "3")
    assert first.process.returncode == EXIT_PASSED, first.output()
    runs = builds.tmp / "runs"
    runs.mkdir()
    build_id = new_build_id("repeat")

    second = builds.run(
        "--repeat-new", "3", "--build-id", build_id, workers=2, TRUST_RUNS=str(runs)
    )

    assert second.process.returncode == EXIT_FAILED, second.output()
    assert sorted(path.name for path in runs.iterdir()) == ["run-1", "run-2", "run-3"]
    queued = client.lrange(BuildKeys(build_id).key("tests"), 0, -1)
    new = ["check_trust.py::test_brand_new", "check_trust.py::test_brand_new_steady"]
    assert queued[-4:] == [f"{test}@@repeat-{run}" for run in (2, 3) for test in new]
    out = second.stdout.read_text()
    standing = "standing: new flaky: a new test that failed 1 of its 3 runs"
    assert standing in failure(out, new[0]), out
    assert "new flaky" in builds.properties()["test_brand_new"]["ciqueue-standing"]
    assert out.count("check_trust.py::test_brand_new_steady") == 0  # it passed: not listed
    root = ET.parse(builds.junit).getroot()
    names = [case.get("name") for case in root.iter("testcase")]
    assert names.count("test_brand_new") == names.count("test_brand_new_steady") == 1, names
    assert root.get("tests") == str(len(names)) == "10"  # the suite's 8, and the 2 new once
