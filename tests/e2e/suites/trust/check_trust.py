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
