"""pytest's -x / --maxfail N become the build's --max-failures (issue 10, finding 12)."""

from __future__ import annotations

from argparse import Namespace

import pytest

from ciqueue_gha.plugin.maxfail import build_max_failures, take_over_maxfail
from ciqueue_gha.queue.settings import QueueSettings


@pytest.mark.parametrize(
    ("max_failures", "maxfail", "cap"),
    [
        (None, 0, None),  # neither: no cap
        (None, 1, 1),  # -x
        (None, 5, 5),  # --maxfail 5
        (3, 0, 3),  # --max-failures alone
        (3, 1, 1),  # both: the lower wins
        (2, 5, 2),
        (None, -1, None),  # pytest takes a negative maxfail as none
    ],
)
def test_the_build_cap_is_the_lower_of_both(
    max_failures: int | None, maxfail: int, cap: int | None
) -> None:
    assert build_max_failures(max_failures, maxfail) == cap


def test_pytest_stops_counting_and_the_queue_settings_carry_the_cap() -> None:
    option = Namespace(maxfail=1)
    settings = take_over_maxfail(option, QueueSettings(max_requeues=2))
    assert settings.max_failures == 1
    assert settings.max_requeues == 2  # the rest kept
    assert option.maxfail == 0  # no worker stops on its own count


def test_pytest_s_real_parser_reads_exitfirst_in_any_spelling() -> None:
    """What the plugin reads is pytest's parsed option, so -x inside -xq counts too."""
    for args, expected in (["-xq"], 1), (["--maxfail=3"], 3), (["-x", "--maxfail", "4"], 4):
        config = pytest.Config.fromdictargs({}, args)
        settings = take_over_maxfail(config.option, QueueSettings())
        assert settings.max_failures == expected, args
