"""The static fallback's split (ciqueue_gha/fallback/split.py): every unit in exactly one
share, the same split for the same collection and durations, longest first when durations are
known, whole files when not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ciqueue_gha.fallback.split import file_of, split

UNITS = [f"t{f}.py::test_{n}" for f in range(5) for n in range(f + 1)]


@given(
    st.lists(st.sampled_from(UNITS), unique=True),
    st.dictionaries(st.sampled_from(UNITS), st.floats(0, 100)),
    st.integers(1, 7),
)
def test_every_unit_in_exactly_one_share(
    units: list[str], durations: dict[str, float], total: int
) -> None:
    shares = split(units, durations, total)
    assert len(shares) == total
    dealt = [unit for share in shares for unit in share]
    assert sorted(dealt) == sorted(units)
    assert split(list(units), dict(durations), total) == shares  # the same on every worker


def test_longest_first_to_the_least_loaded_worker() -> None:
    durations = {"a::x": 0.0, "a::y": 0.15, "b::z": 0.5, "b::w": 0.3}
    shares = split(list(durations), durations, 2)
    assert shares == [["b::z"], ["b::w", "a::y", "a::x"]]
    for share in shares:
        assert share == sorted(share, key=lambda unit: -durations[unit])


def test_unmeasured_units_count_as_the_mean() -> None:
    durations = {"a::x": 4.0, "a::y": 2.0}
    shares = split(["a::x", "a::y", "a::new"], durations, 2)
    assert shares == [["a::x"], ["a::new", "a::y"]]  # new: 3.0 s, the mean


def test_without_durations_whole_files_in_collection_order() -> None:
    shares = split(UNITS, {}, 2)
    for share in shares:
        assert share == [unit for unit in UNITS if unit in share]
    files = [{file_of(unit) for unit in share} for share in shares]
    assert not files[0] & files[1]
    assert abs(len(shares[0]) - len(shares[1])) <= 1
