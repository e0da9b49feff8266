"""Key names: build id validation, the Cluster hash tag, and the key vector the Lua prelude
expects (parsed from lua/_prelude.lua, so the two cannot drift apart)."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from redis.crc import key_slot

from ciqueue_gha.errors import UsageError
from ciqueue_gha.protocol.keys import QUEUE_KEYS, BuildKeys, validate_build_id

LUA = resources.files("ciqueue_gha.protocol") / "lua"


@pytest.mark.parametrize(
    "build_id", ["1", "12345678901", "run-42.attempt_3", "A" * 128, "feature.branch-9"]
)
def test_valid_build_ids(build_id: str) -> None:
    assert validate_build_id(build_id) == build_id
    assert BuildKeys(build_id).build_id == build_id


@pytest.mark.parametrize(
    "build_id",
    ["", "a b", "a{b", "a}b", "{a}", "a:b", "a\nb", "a*", "ü", "A" * 129, " 1", "1 "],
)
def test_invalid_build_ids_are_usage_errors(build_id: str) -> None:
    with pytest.raises(UsageError, match="invalid build id") as raised:
        validate_build_id(build_id)
    assert raised.value.exit_code == 2
    with pytest.raises(UsageError):
        BuildKeys(build_id)


def test_attempts_count_from_one() -> None:
    assert BuildKeys("b", 3).prefix == "ciq:{b}:3:"
    with pytest.raises(UsageError, match="attempt"):
        BuildKeys("b", 0)


@pytest.mark.parametrize("build_id", ["1", "build-7", "x.y_z"])
def test_every_key_carries_the_build_as_hash_tag(build_id: str) -> None:
    keys = BuildKeys(build_id, 2)
    vector = keys.queue_keys()
    assert len(vector) == len(set(vector)) == len(QUEUE_KEYS)
    for key, name in zip(vector, QUEUE_KEYS, strict=True):
        assert key == f"ciq:{{{build_id}}}:2:{name}" == keys.key(name)
        # Redis Cluster hashes the text between the first '{' and the next '}'.
        start = key.index("{")
        assert key[start + 1 : key.index("}", start)] == build_id
        assert key_slot(key.encode()) == key_slot(build_id.encode())


def test_attempts_of_a_build_do_not_share_keys() -> None:
    assert not set(BuildKeys("b", 1).queue_keys()) & set(BuildKeys("b", 2).queue_keys())


def test_unknown_key_name_is_an_error() -> None:
    with pytest.raises(KeyError):
        BuildKeys("b").key("nonsense")


def prelude_key_names() -> list[str]:
    """The names the prelude binds KEYS[1..n] to, in order."""
    prelude = (LUA / "_prelude.lua").read_text()
    match = re.search(
        r"for i, name in ipairs\(\{(?P<names>.*?)\}\) do\s+K\[name\] = KEYS\[i\]", prelude, re.S
    )
    assert match, "the prelude no longer binds KEYS to names with ipairs({...})"
    return re.findall(r"'([^']+)'", match["names"])


def test_key_vector_order_matches_the_lua_prelude() -> None:
    assert prelude_key_names() == [name.replace("-", "_") for name in QUEUE_KEYS]


def test_every_key_a_script_uses_is_bound_by_the_prelude() -> None:
    # A typo such as K.lease_countr would be nil in Lua and fail only at run time.
    bound = set(prelude_key_names())
    for script in LUA.iterdir():
        if script.name.endswith(".lua"):
            used = set(re.findall(r"\bK\.([A-Za-z_]+)", script.read_text()))
            assert used <= bound, f"{script.name} uses unbound keys {sorted(used - bound)}"
