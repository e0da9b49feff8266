"""The attempt a hung unit is recorded as (queue/hang.py): an error (timeout) whose traceback is
the test's own stack, and whose line is where the test hung."""

from __future__ import annotations

from ciqueue_gha.queue.hang import timeout_record

STACK = """\
Thread 0x00007f00 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 320 in wait
  File "/work/site-packages/_pytest/runner.py", line 184 in pytest_runtest_call

Current thread 0x00007f01 (most recent call first):
  File "/repo/tests/helpers.py", line 12 in block
  File "/repo/tests/test_net.py", line 40 in test_fetch
  File "/work/site-packages/_pytest/python.py", line 187 in pytest_pyfunc_call
  File "/work/site-packages/pluggy/_callers.py", line 103 in _multicall
  File "/work/site-packages/click/core.py", line 911 in invoke
  File "<frozen runpy>", line 88 in _run_code
"""


def test_a_hung_unit_is_an_error_at_the_innermost_line_of_its_file() -> None:
    record = timeout_record("tests/test_net.py::test_fetch", 5.0, 1000.0, 5.2, STACK)
    assert (record.outcome, record.unit, record.file, record.line) == (
        "error",
        "tests/test_net.py::test_fetch",
        "tests/test_net.py",
        40,
    )
    (case,) = record.cases
    assert case.message == (
        "timeout: ran longer than --max-test-duration (5 s); the worker was stopped"
    )
    assert case.duration == 5.2 and record.started_at == 1000.0
    assert 'File "/repo/tests/helpers.py", line 12 in block' in case.longrepr
    assert 'threading.py", line 320 in wait' in case.longrepr  # every thread's stack
    for runner in ("_pytest", "pluggy", "click", "runpy"):
        assert runner not in case.longrepr


def test_without_a_stack_the_record_still_says_timeout() -> None:
    record = timeout_record("tests/test_net.py", 2.5, 0.0, 2.6, "")
    assert record.line == 0 and record.file == "tests/test_net.py"
    assert record.longrepr.startswith("timeout: ran longer than --max-test-duration (2.5 s)")
    assert "Stack" not in record.longrepr
