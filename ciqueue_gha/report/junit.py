"""The merged JUnit file: one testcase per test, named as pytest's own --junitxml names it.

Each testcase carries `file` and a 1-based `line`, its final outcome, and earlier failed
attempts as ``flakyFailure`` (the test finally passed) or ``rerunFailure`` (it failed
again). Units that never got a final result appear as errors, so none is silently lost.
"""

from __future__ import annotations

import re
from pathlib import Path

from junitparser import Attr, Error, Failure, IntAttr, Skipped, SystemOut, TestSuite
from junitparser.xunit2 import FlakyFailure, JUnitXml, RerunFailure, TestCase

from .outcome import BuildOutcome, CaseHistory

# Characters XML 1.0 cannot carry at all, even escaped.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """`text` with characters XML cannot carry shown as ``\\xNN`` escapes."""
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def junit_names(nodeid: str) -> tuple[str, str]:
    """(classname, name) for a pytest node id, as pytest's junitxml plugin derives them."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


class PytestCase(TestCase):
    """A testcase with the `file` and `line` attributes pytest's xunit1 output has."""

    file = Attr()
    line = IntAttr()


def _testcase(history: CaseHistory) -> PytestCase:
    case = history.final
    classname, name = junit_names(case.nodeid)
    element = PytestCase(xml_safe(name), xml_safe(classname), round(case.duration, 6))
    element.file = case.file
    element.line = case.line
    if case.outcome == "failed":
        element.result = [Failure(xml_safe(case.message), "failure")]
        element.result[0].text = xml_safe(case.longrepr)
    elif case.outcome == "error":
        element.result = [Error(xml_safe(case.message), "error")]
        element.result[0].text = xml_safe(case.longrepr)
    elif case.outcome == "skipped":
        element.result = [Skipped(xml_safe(case.message))]
    interim = FlakyFailure if history.flaky else RerunFailure
    for old in history.earlier_failures:
        result = interim(xml_safe(old.message), old.outcome)
        result.stack_trace = xml_safe(old.longrepr)
        element.add_interim_result(result)
    if case.output:
        element.append(SystemOut(xml_safe(case.output)))
    return element


def _not_run_testcase(unit: str, message: str) -> PytestCase:
    classname, name = junit_names(unit)
    element = PytestCase(xml_safe(name), xml_safe(classname), 0.0)
    element.result = [Error(xml_safe(message), "incomplete")]
    return element


def build_junit(outcome: BuildOutcome, suite_name: str = "pytest") -> JUnitXml:
    suite = TestSuite(suite_name)
    cases = [_testcase(history) for history in outcome.cases]
    cases += [_not_run_testcase(unit, "not run: no worker finished it") for unit in outcome.missing]
    for test, worker in sorted(outcome.strays.items()):
        message = f"not run: collected by {worker} only, never queued"
        cases.append(_not_run_testcase(test, message))
    # append, then count once: add_testcase recounts the whole suite on every call (quadratic).
    for case in cases:
        suite.append(case)
    suite.update_statistics()
    xml = JUnitXml()
    xml.add_testsuite(suite)
    return xml


def write_junit(outcome: BuildOutcome, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    build_junit(outcome).write(str(path), pretty=True)
