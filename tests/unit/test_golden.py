"""Reporter output against the golden files in tests/golden/ (one folder per case)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden.regenerate import OUTPUTS, cases, render

HOW = "if the change is intended, run `python tests/golden/regenerate.py` and review the diff"


def test_there_are_golden_cases() -> None:
    assert {case.name for case in cases()} >= {"mixed", "rerun-passed"}


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_output_matches_golden_files(case: Path) -> None:
    rendered = render(case)
    assert set(rendered) == set(OUTPUTS)
    for name, text in rendered.items():
        path = case / name
        assert path.exists(), f"{path} is missing: {HOW}"
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"{path} differs from the current output: {HOW}"


def test_mixed_case_covers_what_it_claims() -> None:
    """The mixed input keeps the variety the golden files are meant to pin down."""
    summary = (Path(__file__).parents[1] / "golden" / "mixed" / "summary.md").read_text("utf-8")
    for heading in ("### Failures (4)", "### Not run (2)", "### Flaky tests (1)"):
        assert heading in summary
    assert "### Taken over from lost workers (1)" in summary
    assert summary.count("<code>worker-") >= 3
    assert "ünïcode" in summary and "名前" in summary
