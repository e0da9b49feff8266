"""github/log.py against the runner's reading of a log (tests/support/runner_log.py): text a
test controls never runs a command, the tool's own commands run with their values intact,
and every stop-commands block is closed."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ciqueue_gha.github.log import RunnerLog, could_be_command
from ciqueue_gha.github.workflow import WorkflowCommands
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.record import CaseRecord
from ciqueue_gha.queue.supervisor import Verdict
from ciqueue_gha.report.build import BuildReport, CaseHistory
from ciqueue_gha.report.text import render_text
from tests.support.runner_log import Command, commands, lines, open_block, without_blocks

RUNNER = {"GITHUB_ACTIONS": "true"}

HOSTILE = [
    "boom\n::stop-commands::x\n::error::forged after stop",
    "::add-mask::the-word-the",
    "  \t::error title=Forged,file=a.py::injected",
    "text\r::warning::after a lone CR",
    "100%0A::notice::percent",
    "failed here ##[error]old syntax",
    "::set-output name=conclusion::success",
    "::group::open\n::endgroup::",
]


# --- the helper reads logs as the runner does --------------------------------------------------


def test_helper_splits_lines_at_lf_cr_and_crlf() -> None:
    assert lines("a\nb\rc\r\nd\n") == ["a", "b", "c", "d"]


def test_helper_parses_both_syntaxes_after_trimming() -> None:
    log = "  ::error file=a.py,line=3,title=x%3Ay%2Cz::m%0Ab%25\nx ##[warning]old%3B\n::nope::x\n"
    assert commands(log) == [
        Command("error", {"file": "a.py", "line": "3", "title": "x:y,z"}, "m\nb%", 1),
        Command("warning", {}, "old;", 2),
    ]


def test_helper_honours_stop_commands_and_only_its_token() -> None:
    log = (
        "::stop-commands::tok\n::error::no\n::stop-commands::other\n::other::\n"
        "::TOK::\n::error::yes\n"
    )
    found = commands(log)
    assert [c.name for c in found] == ["stop-commands", "TOK", "error"]
    assert found[-1].data == "yes"
    assert open_block(found) is None
    assert open_block(commands("::stop-commands::t\n::error::x\n")) == "t"


# --- RunnerLog ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_runs_no_command_and_reads_the_same(text: str) -> None:
    out = io.StringIO()
    RunnerLog(out, RUNNER).text(text)
    log = out.getvalue()
    found = commands(log)
    assert without_blocks(found) == [], log
    assert open_block(found) is None
    # The reader sees the text as it was (between the block's two marker lines).
    body = log.split("\n", 1)[1].rsplit("\n", 2)[0] if could_be_command(text) else log[:-1]
    assert body == text


def test_text_that_cannot_be_a_command_is_printed_plain() -> None:
    out = io.StringIO()
    RunnerLog(out, RUNNER).text("FAILED tests/a.py::test_x - assert 1 == 2")
    assert out.getvalue() == "FAILED tests/a.py::test_x - assert 1 == 2\n"


def test_outside_a_runner_hostile_text_is_printed_plain() -> None:
    out = io.StringIO()
    RunnerLog(out, {}).text(HOSTILE[0])
    assert out.getvalue() == HOSTILE[0] + "\n"


def test_each_block_has_a_fresh_token() -> None:
    out = io.StringIO()
    log = RunnerLog(out, RUNNER)
    log.text("::error::a")
    log.text("::error::b")
    stops = [c.data for c in commands(out.getvalue()) if c.name == "stop-commands"]
    assert len(stops) == 2 and len(set(stops)) == 2 and all(len(t) == 32 for t in stops)


@given(st.text(alphabet=st.sampled_from(":#[] \t\r\nae%0A=,-")))
def test_no_text_runs_a_command(text: str) -> None:
    out = io.StringIO()
    RunnerLog(out, RUNNER).text(text)
    found = commands(out.getvalue())
    assert without_blocks(found) == []
    assert open_block(found) is None
    assert could_be_command(text) or not found


def test_own_commands_keep_hostile_values_intact() -> None:
    out = io.StringIO()
    cmds = WorkflowCommands(out, RUNNER)
    for text in HOSTILE:
        cmds.annotate("error", text, file=f"tests/{text}.py", line=3, title=text)
    found = commands(out.getvalue())
    assert [c.name for c in found] == ["error"] * len(HOSTILE)
    for command, text in zip(found, HOSTILE, strict=True):
        assert command.data == text
        assert command.properties == {"file": f"tests/{text}.py", "line": "3", "title": text}


def test_add_mask_round_trips_percent_and_colons() -> None:
    out = io.StringIO()
    WorkflowCommands(out, RUNNER).add_mask("p%40ss:w,rd%0A")
    assert commands(out.getvalue()) == [Command("add-mask", {}, "p%40ss:w,rd%0A", 1)]


def test_a_command_inside_verbatim_ends_and_reopens_the_block() -> None:
    out = io.StringIO()
    log = RunnerLog(out, RUNNER)
    with log.verbatim():
        out.write("::error::from a test, no newline")
        log.command("notice", "ours")
        out.write("::warning::from a test\n")
    found = commands(out.getvalue())
    assert [c.name for c in without_blocks(found)] == ["notice"]
    assert open_block(found) is None


VERBATIM_CHILD = """
import os, sys
from ciqueue_gha.github.log import RunnerLog
with RunnerLog().verbatim():
    print("::error::stdout, buffered")
    print("::warning::stderr", file=sys.stderr)
    os.write(1, b"::notice::fd 1\\n")
    os.write(2, b"::notice::fd 2, no newline")
print("::notice::ours, after")
"""


def test_verbatim_holds_both_streams_and_the_descriptors() -> None:
    # The runner reads stdout and stderr apart: the block must hold what goes to either.
    done = subprocess.run(
        [sys.executable, "-c", VERBATIM_CHILD],
        env={**os.environ, **RUNNER},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == ""
    found = commands(done.stdout)
    assert [(c.name, c.data) for c in without_blocks(found)] == [("notice", "ours, after")]
    assert open_block(found) is None
    for text in ("stdout, buffered", "::warning::stderr", "fd 1", "fd 2, no newline"):
        assert text in done.stdout


def test_the_text_report_runs_no_command_of_its_not_run_and_taken_over_lines() -> None:
    hostile_id = "t.py::test[\r::error::x]"
    failed = CaseRecord(hostile_id, "failed", message=HOSTILE[0], longrepr=HOSTILE[2])
    report = BuildReport(
        [CaseHistory(failed, hostile_id, "w1")],
        missing=["t.py::lost\n::add-mask::the"],
        takeovers={"t.py::slow\n::warning::x": 2},
        total_units=3,
        strays={"t.py::stray\n##[error]x": "w2"},
    )
    out = io.StringIO()
    RunnerLog(out, RUNNER).text(render_text(report, BuildKeys("b"), Verdict.INACTIVE_WORKERS))
    found = commands(out.getvalue())
    assert without_blocks(found) == [] and open_block(found) is None
    for line in ("NOT RUN t.py::lost\n::add-mask::the", "TAKEN OVER t.py::slow\n::warning::x"):
        assert line in out.getvalue()


DYING_CHILD = """
import os, sys
from ciqueue_gha.github.log import RunnerLog
log = RunnerLog()
with log.verbatim():
    print("::error::a test, then it dies", flush=True)
    os._exit(3)
"""


def test_a_block_is_ended_though_the_process_dies_inside_it() -> None:
    # A block left open would stop every command of the job's later steps, masks included.
    done = subprocess.run(
        [sys.executable, "-c", DYING_CHILD],
        env={**os.environ, **RUNNER},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    found = commands(done.stdout)
    assert without_blocks(found) == [] and open_block(found) is None, done.stdout
    assert [c.name for c in found] == ["stop-commands", found[0].data]


def test_a_block_ended_as_it_should_is_ended_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", VERBATIM_CHILD],
        env={**os.environ, **RUNNER},
        capture_output=True,
        text=True,
        check=True,
    )
    names = [c.name for c in commands(done.stdout)]
    assert names[0] == "stop-commands" and len(names) == 3, done.stdout  # stop, resume, notice
    assert done.stdout.count("::" + commands(done.stdout)[0].data + "::") == 1
