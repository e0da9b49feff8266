"""A suite for tests/e2e/test_trust.py: what fails is set by the environment of each build.

TRUST_FAIL names the tests that fail (comma-separated names); TRUST_BUILD, when set, makes
test_alternate fail on odd builds (one build in two)."""

import os

import pytest


def _fails(name: str) -> bool:
    return name in os.environ.get("TRUST_FAIL", "").split(",")


def test_ok() -> None:
    pass


@pytest.mark.parametrize("name", ["net_a", "net_b", "quarantined", "kept", "expired", "new"])
def test_named(name: str) -> None:
    assert not _fails(name), f"{name} failed as asked"


def test_alternate() -> None:
    build = int(os.environ.get("TRUST_BUILD", "0"))
    assert build % 2 == 0, f"build {build} is odd"


if os.environ.get("TRUST_RUNS"):  # two tests new to the history, run with --repeat-new

    def _run_number() -> int:
        """This run's number among the runs of test_brand_new, 1 first: the first file of
        TRUST_RUNS it creates (an exclusive create, so two workers never share a number)."""
        number = 1
        while True:
            path = os.path.join(os.environ["TRUST_RUNS"], f"run-{number}")
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                number += 1
                continue
            os.write(descriptor, os.environ.get("CIQUEUE_WORKER_ID", "").encode())
            os.close(descriptor)
            return number

    def test_brand_new() -> None:
        number = _run_number()
        assert number != 2, "the second of its runs fails"

    def test_brand_new_steady() -> None:
        pass
