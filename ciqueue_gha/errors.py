"""The exceptions of ciqueue-gha, each carrying the exit code of DESIGN.md §1.

A `CiqueueError` is always reported as one line (its message) and its exit code,
never as a traceback.
"""

from __future__ import annotations

#: Exit codes, as documented in the README and DESIGN.md.
EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: As plain pytest: collection errors (without --continue-on-collection-errors), no test run.
EXIT_INTERRUPTED = 2
EXIT_INCOMPLETE = 3
EXIT_INFRASTRUCTURE = 4


class CiqueueError(Exception):
    """Base class: a failure with a one-line message and an exit code."""

    exit_code = EXIT_INFRASTRUCTURE


class UsageError(CiqueueError):
    """A bad option, URL, build id or test list."""

    exit_code = EXIT_USAGE


class InfrastructureError(CiqueueError):
    """Redis unreachable, refused, too old, or the queue state lost."""

    exit_code = EXIT_INFRASTRUCTURE


class RedisUnreachable(InfrastructureError):
    """No connection to Redis could be made, even after retries."""


class RedisAuthFailed(InfrastructureError):
    """Redis refused the credentials."""


class RedisTooOld(InfrastructureError):
    """The server lacks what the scripts need."""


class RedisServerNotFound(InfrastructureError):
    """No redis-server binary for the private Redis."""


class QueueNeverPopulated(InfrastructureError):
    """No worker populated the queue within the queue-init timeout."""


class QueueStateLost(InfrastructureError):
    """The build's keys vanished or disagree (Redis restarted empty, evicted, or flushed)."""


class RedisRefused(InfrastructureError):
    """Redis answered a call with an error: out of memory, no permission, a read-only
    replica, ... (the message names the kind, as Redis's error code does)."""


class Incomplete(CiqueueError):
    """Tests were not run, were lost, or time ran out."""

    exit_code = EXIT_INCOMPLETE
