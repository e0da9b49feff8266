"""Every default of ciqueue-gha, in one place, each with the reason for its value."""

from __future__ import annotations

#: Seconds without a heartbeat after which another worker may take a test over.
LEASE_TIMEOUT = 30.0

#: Heartbeats per lease timeout: a lease survives four lost heartbeats in a row.
HEARTBEATS_PER_LEASE = 5

#: A test running this many lease timeouts stops heartbeating, so a hung test is reclaimed.
MAX_TEST_DURATION_LEASES = 10

#: Seconds the summary waits for the queue to be exhausted before giving up.
REPORT_TIMEOUT = 3600.0

#: Seconds the summary waits with no live worker before giving up.
INACTIVE_WORKERS_TIMEOUT = 300.0

#: Seconds workers and the summary wait for the queue to be populated.
QUEUE_INIT_TIMEOUT = 300.0

#: Every key of a build expires this long after its last write (3 days), so Redis never fills up.
KEY_TTL = 3 * 24 * 3600

#: An attempt's verdict (what a retry of it needs: totals, the failed and unfinished units) is
#: kept this long (30 days): as long as GitHub allows a workflow run to be re-run.
VERDICT_TTL = 30 * 24 * 3600

#: How far from the head a requeued test goes back, so the next reserve of the worker
#: that failed it takes another test (the requeue and that reserve share one round trip).
REQUEUE_OFFSET = 1

#: The circuit breaker: a worker that fails this many units in a row stops taking work, and its
#: streak goes back to the queue for the others (0: off). A broken runner fails fast, so ten
#: units cost it seconds and the others at most ten reruns; a healthy worker rarely meets ten
#: real failures in a row of its own share (a failure another worker's streak gave back does
#: not count), and if it does, its units only run again elsewhere.
MAX_CONSECUTIVE_FAILURES = 10

#: Oldest Redis whose scripting we rely on (TIME before writes, effects replication).
MIN_REDIS_VERSION = (6, 0)

#: How long a failing Redis call is retried, with backoff, before it gives up (seconds, counted
#: from the call's start, across every retry and reconnect inside it). A restarting server is
#: ridden out; a dead or stopped one is an exit 4 within about this plus one socket timeout.
RETRY_BUDGET = 5.0
BACKOFF_BASE = 0.05
BACKOFF_CAP = 1.0

#: The very first contact retries only a refused connection, and only this long: a wrong URL
#: or a server that is not there fails fast, while one still starting up gets a moment. A
#: server that accepts but never answers is not asked twice.
FIRST_CONTACT_BUDGET = 1.5

#: Seconds to open a connection (TCP and, for rediss://, the TLS handshake).
CONNECT_TIMEOUT = 2.0

#: Seconds a reply may take before the call is retried. Measured: the slowest reply a loaded
#: build sees is well under this (populate of 100,000 tests: 0.25 s); and a retry of a reply
#: that was merely slow succeeds (every script is safe to repeat, and the retry is served
#: right after the slow call ends), so only a server silent for RETRY_BUDGET fails a call.
SOCKET_TIMEOUT = 2.0

#: Seconds populate's reply may take per test, on top of SOCKET_TIMEOUT (its work grows with
#: the suite). Measured: 7 µs a test on a loaded 2-core machine (100,000 tests in 0.73 s, while
#: the slowest acknowledge of 8 busy workers took 60 ms); this is seven times that. Suites past
#: 40,000 tests (where this passes SOCKET_TIMEOUT) populate on a client that waits so long.
POPULATE_REPLY_PER_TEST = 50e-6

#: How often the supervisor looks at the queue, seconds: a look is one script call of a few
#: microseconds in Redis, and the summary starts its report within this of the last result.
SUPERVISOR_POLL_INTERVAL = 0.05

#: Seconds between the progress lines the summary writes to a log (not a terminal, which gets a
#: live bar) and between updates of the live check run: a build of an hour makes 240 updates,
#: well inside the API's rate limit (1,000 requests an hour for a job's token).
PROGRESS_INTERVAL = 15.0

#: While the queue is empty but others still hold leases, a worker asks again after this
#: many seconds, doubling each time up to the cap: at the end of a build the last tests
#: finish within moments of each other, and an idle worker should see that as soon.
WAIT_POLL_FIRST = 0.01
WAIT_POLL_CAP = 1.0

#: Tests pushed per Redis command while populating (Lua's unpack limit is about 8,000).
POPULATE_CHUNK = 5000
