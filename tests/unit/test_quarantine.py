"""The quarantine file's lines and how an entry matches test ids (trust/quarantine.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from ciqueue_gha.trust.quarantine import Entry, Quarantine, parse_line

TODAY = dt.date(2026, 12, 7)


@pytest.mark.parametrize(
    ("line", "entry"),
    [
        ("t.py::test_a", Entry("t.py::test_a")),
        ("  t.py::test_a   # flaky  on CI ", Entry("t.py::test_a", None, "flaky  on CI")),
        ("t.py::test_a[x#1]  until 2027-01-31", Entry("t.py::test_a[x#1]", dt.date(2027, 1, 31))),
        ("t*  until 2027-01-31  # why # not", Entry("t*", dt.date(2027, 1, 31), "why # not")),
    ],
)
def test_a_line_holds_a_pattern_an_end_and_a_reason(line: str, entry: Entry) -> None:
    assert parse_line(line) == entry


@pytest.mark.parametrize("line", ["", "   ", "# only a comment", "  # indented comment"])
def test_blank_and_comment_lines_hold_nothing(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    "line",
    ["t.py  till 2027-01-31", "t.py until", "t.py until 31/01/2027", "t.py until 2027-1-31", "a b"],
)
def test_a_malformed_line_says_what_it_expected(line: str) -> None:
    with pytest.raises(ValueError, match=r"expected|is not a date"):
        parse_line(line)


@pytest.mark.parametrize(
    ("pattern", "test", "matches"),
    [
        ("t.py::test_a[1-2]", "t.py::test_a[1-2]", True),  # an exact id, brackets and all
        ("t.py::test_a", "t.py::test_a[1-2]", False),
        ("t.py", "t.py::TestX::test_a", True),  # a file takes its tests
        ("t.py::TestX", "t.py::TestX::test_a", True),
        ("t.py", "t.py2::test_a", False),
        ("*::test_net_*", "dir/t.py::test_net_dns", True),
        ("dir/*.py", "dir/t.py::test_a", True),  # a glob of the file
        ("dir/*.py", "other/t.py::test_a", False),
        ("t.py::test_?", "t.py::test_ab", False),
    ],
)
def test_an_entry_matches_an_id_a_file_or_a_glob(pattern: str, test: str, matches: bool) -> None:
    assert Entry(pattern).matches(test) is matches


def test_an_entry_holds_through_its_last_day_and_expires_after() -> None:
    entry = Entry("t.py", TODAY)
    assert Quarantine((entry,), TODAY).holding("t.py::test_a") == entry
    later = Quarantine((entry,), TODAY + dt.timedelta(days=1))
    assert later.holding("t.py::test_a") is None
    assert later.expired_for("t.py::test_a") == entry and later.expired == [entry]
    assert Entry("t.py").line() == "t.py" and entry.line() == "t.py  until 2026-12-07"
