"""README.md documents the composite action exactly: every input of action.yml has a row in
the inputs table under "On GitHub Actions", with its default, no row names an input the action
lacks, and every output is named in the outputs paragraph below the table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## On GitHub Actions"

#: How the README's default column writes the defaults that are no plain value.
DEFAULT_WORDS = {"": "empty", "${{ github.token }}": "the job's token"}

_ROW = re.compile(r"^\|\s*`(?P<name>[^`]+)`\s*\|(?P<meaning>.*)\|(?P<default>[^|]*)\|\s*$")


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    return data


def section() -> str:
    """The README's "On GitHub Actions" section, up to the next heading of its level."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in readme, f"README.md has no {SECTION!r} section"
    body = readme.split(SECTION, 1)[1]
    return re.split(r"^## ", body, maxsplit=1, flags=re.MULTILINE)[0]


def input_rows() -> dict[str, str]:
    """Input name -> its default column, from the table whose header starts `| input |`."""
    lines = section().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^\|\s*input\s*\|", line))
    rows: dict[str, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        match = _ROW.match(line)
        assert match, f"not an input row: {line!r}"
        assert match["name"] not in rows, f"input {match['name']!r} documented twice"
        rows[match["name"]] = match["default"].strip()
    return rows


def documented_default(spec: dict[str, Any]) -> str:
    if spec.get("required"):
        return "required"
    default = str(spec.get("default", ""))
    return DEFAULT_WORDS.get(default, f"`{default}`")


def outputs_paragraph() -> str:
    paragraphs = re.split(r"\n\s*\n", section())
    found = [p for p in paragraphs if p.lstrip().startswith("Outputs")]
    assert len(found) == 1, "the section needs one paragraph starting 'Outputs'"
    return found[0]


def test_the_table_documents_every_input_of_the_action_and_no_other() -> None:
    inputs = set(action()["inputs"])
    documented = set(input_rows())
    assert inputs - documented == set(), "inputs of action.yml missing from README.md"
    assert documented - inputs == set(), "README.md documents inputs action.yml lacks"


def test_the_table_gives_each_input_its_default() -> None:
    rows = input_rows()
    wrong = {
        name: (rows[name], documented_default(spec))
        for name, spec in action()["inputs"].items()
        if name in rows and rows[name] != documented_default(spec)
    }
    assert wrong == {}, "README default (documented, action.yml's) differ"


def test_every_output_is_named_and_no_other() -> None:
    # Names in parentheses are values (`success` | `failure` ...), not outputs.
    paragraph = re.sub(r"\([^)]*\)", "", outputs_paragraph())
    named = set(re.findall(r"`([^`]+)`", paragraph))
    assert named == set(action()["outputs"])


def test_the_parser_finds_the_table() -> None:
    # The checks above would pass vacuously if the table were not found or parsed.
    rows = input_rows()
    assert len(rows) >= 10 and "mode" in rows and "redis-url" in rows
    assert rows["mode"] == "required"
