"""The commands' shared options: each option means the same on every command that has it, and
`pass_build`/`pass_report` hand a command one object in place of their values."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from ciqueue_gha.cli import cli
from ciqueue_gha.config import BuildOptions, ReportOptions, pass_build
from ciqueue_gha.errors import UsageError
from ciqueue_gha.github.env import GitHubEnv


def commands(group: click.Group, path: str = "ciqueue-gha") -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def test_an_option_reads_the_same_variable_and_type_on_every_command() -> None:
    seen: dict[str, tuple[object, ...]] = {}
    for where, command in commands(cli):
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            kind = (param.envvar, type(param.type), param.is_flag, param.show_envvar)
            assert seen.setdefault(param.opts[0], kind) == kind, f"{param.opts[0]} on {where}"
    assert {"--redis-url", "--insecure-tls", "--junit-xml"} <= set(seen)


def test_the_build_options_reach_a_command_as_one_object() -> None:
    got: list[BuildOptions] = []

    @click.command()
    @pass_build
    @click.option("--other")
    def command(build: BuildOptions, other: str | None) -> None:
        got.append(build)
        assert other == "x"

    command.main(
        ["--redis-url", "redis://h", "--build-id", "b", "--other", "x"], standalone_mode=False
    )
    assert got == [BuildOptions("redis://h", False, "b", None)]


def test_the_report_options_are_every_summary_option() -> None:
    summary = dict(commands(cli))["ciqueue-gha summary"]
    names = {param.name for param in summary.params}
    assert set(ReportOptions.__dataclass_fields__) <= names


def test_a_target_needs_a_redis_and_a_build_id() -> None:
    github = GitHubEnv.from_environ({"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "3"})
    target = BuildOptions("redis://h", True, None, None).target(github)
    assert (target.keys.build_id, target.keys.attempt, target.verify_tls) == ("42", 3, False)
    with pytest.raises(UsageError, match="no Redis"):
        BuildOptions(None, False, "b", None).target(github)
    with pytest.raises(UsageError, match="no build id"):
        BuildOptions("redis://h", False, None, None).target(GitHubEnv.from_environ({}))
