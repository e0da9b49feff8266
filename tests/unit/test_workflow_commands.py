"""Workflow commands: escaping as the runner unescapes, one line per command whatever a test
name holds, outputs and summaries appended to the runner's files."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ciqueue_gha.github.workflow import WorkflowCommands, escape_data, escape_property

INJECTIONS = [
    "test_x\n::error::pwned",
    "test_x%0A::warning::pwned",
    "test_x\r\n::add-mask::pwned",
    "test_x\r::set-output name=a::b",
    "a:b,c=d::e%25",
]


def runner_unescape(value: str, *, prop: bool = False) -> str:
    """What the runner does to an escaped value (actions/runner ActionCommand.Unescape)."""
    pairs = [("%0D", "\r"), ("%0A", "\n")]
    if prop:
        pairs += [("%3A", ":"), ("%2C", ",")]
    for escaped, raw in [*pairs, ("%25", "%")]:
        value = value.replace(escaped, raw)
    return value


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """Split one command line as the runner does: name, properties, message (all raw)."""
    match = re.fullmatch(r"::([a-z-]+)(?: ([^:]*))?::(.*)", line)
    assert match, line
    name, props, message = match.groups()
    properties = {}
    for pair in (props or "").split(","):
        if pair:
            key, _, value = pair.partition("=")
            properties[key] = runner_unescape(value, prop=True)
    return name, properties, runner_unescape(message)


def commands(env: dict[str, str] | None = None) -> tuple[WorkflowCommands, io.StringIO]:
    out = io.StringIO()
    return WorkflowCommands(out, env or {}), out


def test_escape_data_and_property() -> None:
    assert escape_data("100%\r\ndone") == "100%25%0D%0Adone"
    assert escape_data("a:b,c") == "a:b,c"
    assert escape_property("100%\r\na:b,c") == "100%25%0D%0Aa%3Ab%2Cc"
    # % first, so an escape already in the value is not unescaped by the runner.
    assert escape_data("%0A") == "%250A"


@pytest.mark.parametrize("text", INJECTIONS)
def test_escaping_round_trips_through_the_runner(text: str) -> None:
    assert runner_unescape(escape_data(text)) == text
    assert runner_unescape(escape_property(text), prop=True) == text


@given(st.text(alphabet=st.sampled_from("%:,\r\n0ADC25ab=")))
def test_any_text_round_trips(text: str) -> None:
    assert runner_unescape(escape_data(text)) == text
    assert runner_unescape(escape_property(text), prop=True) == text
    assert "\n" not in escape_data(text) and "\r" not in escape_data(text)
    assert not set(":,") & set(escape_property(text))


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_test_name_cannot_inject_a_command(name: str) -> None:
    cmds, out = commands()
    cmds.annotate(
        "error", f"{name} failed", file=f"tests/{name}.py", line=3, end_line=4, title=name
    )
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "\r" not in text
    command, properties, message = parse_command(text.rstrip("\n"))
    assert command == "error"
    assert properties == {"file": f"tests/{name}.py", "line": "3", "endLine": "4", "title": name}
    assert message == f"{name} failed"


def test_annotation_levels_and_optional_properties() -> None:
    cmds, out = commands()
    cmds.annotate("warning", "slow", title="t")
    cmds.notice("fyi")
    cmds.annotate("error", "boom", file="a.py", line=7)
    assert out.getvalue().splitlines() == [
        "::warning title=t::slow",
        "::notice::fyi",
        "::error file=a.py,line=7::boom",
    ]


def test_multi_line_message_stays_on_one_line() -> None:
    cmds, out = commands()
    cmds.annotate("error", "line one\nline two\n", title="x")
    assert out.getvalue() == "::error title=x::line one%0Aline two%0A\n"


def test_add_mask_masks_each_line_of_a_multi_line_secret() -> None:
    cmds, out = commands()
    cmds.add_mask("s3cret")
    cmds.add_mask("-----BEGIN KEY-----\nabc%def\n\n-----END KEY-----\n")
    cmds.add_mask("")
    assert out.getvalue().splitlines() == [
        "::add-mask::s3cret",
        "::add-mask::-----BEGIN KEY-----",
        "::add-mask::abc%25def",
        "::add-mask::-----END KEY-----",
    ]


def test_group_closes_even_when_the_block_raises() -> None:
    cmds, out = commands()
    with cmds.group("Run: a\nb"):
        out.write("inside\n")
    with pytest.raises(RuntimeError), cmds.group("second"):
        raise RuntimeError
    assert out.getvalue().splitlines() == [
        "::group::Run: a%0Ab",
        "inside",
        "::endgroup::",
        "::group::second",
        "::endgroup::",
    ]


def read_outputs(path: Path) -> dict[str, str]:
    """Parse a GITHUB_OUTPUT file as the runner does (heredoc form only)."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").split("\n"))
    for line in lines:
        if not line:
            continue
        name, _, delimiter = line.partition("<<")
        value: list[str] = []
        for body in lines:
            if body == delimiter:
                break
            value.append(body)
        else:
            raise AssertionError(f"output {name} has no closing delimiter")
        outputs[name] = "\n".join(value)
    return outputs


def test_set_output_multi_line_values(tmp_path: Path) -> None:
    output = tmp_path / "output"
    cmds, out = commands({"GITHUB_OUTPUT": str(output)})
    tricky = "line 1\nEOF\nghadelimiter_\nname<<EOF\n::error::no\n"
    assert cmds.set_output("conclusion", "failure")
    assert cmds.set_output("failed-tests", tricky)
    assert cmds.set_output("empty", "")
    assert out.getvalue() == ""  # nothing in the log
    assert read_outputs(output) == {"conclusion": "failure", "failed-tests": tricky, "empty": ""}


def test_set_output_delimiter_never_occurs_in_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "output"
    ids = iter(["collide", "fresh"])
    monkeypatch.setattr("uuid.uuid4", lambda: next(ids))
    cmds, _ = commands({"GITHUB_OUTPUT": str(output)})
    cmds.set_output("x", "before\nghadelimiter_collide\nafter")
    assert output.read_text().splitlines()[0] == "x<<ghadelimiter_fresh"
    assert read_outputs(output) == {"x": "before\nghadelimiter_collide\nafter"}


@pytest.mark.parametrize("name", ["", "a b", "a\nb", "a<<b", "1x", "x=y"])
def test_set_output_rejects_names_that_could_break_the_file(name: str, tmp_path: Path) -> None:
    cmds, _ = commands({"GITHUB_OUTPUT": str(tmp_path / "output")})
    with pytest.raises(ValueError, match="invalid output name"):
        cmds.set_output(name, "v")
    assert not (tmp_path / "output").exists()


def test_outside_a_runner_files_are_left_alone(tmp_path: Path) -> None:
    cmds, out = commands({})
    assert cmds.set_output("x", "1") is False
    assert cmds.append_summary("# hi") is False
    assert out.getvalue() == ""
    assert list(tmp_path.iterdir()) == []


def test_append_summary_appends_and_ends_lines(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    cmds, _ = commands({"GITHUB_STEP_SUMMARY": str(summary)})
    assert cmds.append_summary("## ciqueue-gha ✅")
    assert cmds.append_summary("| a |\n|---|\n")
    assert summary.read_text(encoding="utf-8") == "earlier step\n## ciqueue-gha ✅\n| a |\n|---|\n"


def test_environment_is_read_when_writing(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    cmds = WorkflowCommands(io.StringIO(), env)
    assert cmds.set_output("x", "1") is False
    env["GITHUB_OUTPUT"] = str(tmp_path / "output")
    assert cmds.set_output("x", "1") is True
    assert read_outputs(tmp_path / "output") == {"x": "1"}
