"""The merged JUnit file: one testcase per test, named as pytest's own --junitxml names it.

Each testcase carries `file` and a 1-based `line`, its final outcome, and earlier failed
attempts as ``flakyFailure`` (the test finally passed) or ``rerunFailure`` (it failed
again). A failure carries its standing as a property (``ciqueue-standing``: new, known
flaky...), a quarantined one its entry too (``quarantined``). Units that never got a final
result appear as errors, so none is silently lost. Collection errors and module-level skips
appear as pytest's JUnit writes them: a testcase named after the file, with ``error
message="collection failure"`` or ``skipped message="collection skipped"``, and no line.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from junitparser import Attr, Error, Failure, IntAttr, Skipped, SystemOut, TestSuite
from junitparser.xunit2 import FlakyFailure, RerunFailure, TestCase

from ..queue.record import CaseRecord
from ..trust.classify import QUARANTINED, Standing
from .build import BuildReport, CaseHistory

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


def _collection_testcase(case: CaseRecord) -> PytestCase:
    classname, name = junit_names(case.nodeid)
    element = PytestCase(xml_safe(name), xml_safe(classname), 0.0)
    element.file = case.nodeid.split("::", 1)[0]
    if case.outcome == "skipped":
        element.result = [Skipped("collection skipped")]
    else:
        element.result = [Error("collection failure")]
    element.result[0].text = xml_safe(case.longrepr)
    return element


def _testcase(history: CaseHistory, standing: Standing | None = None) -> PytestCase:
    case = history.final
    if history.collection:
        return _collection_testcase(case)
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
    if standing is not None:  # a failure's standing, for tools reading the JUnit
        element.add_property("ciqueue-standing", standing.describe())
        if standing.kind == QUARANTINED and standing.entry is not None:
            element.add_property("quarantined", standing.entry.line())
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


@dataclass
class _Totals:
    """A suite's counts, kept as junitparser's `update_statistics` keeps them."""

    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    time: float = 0.0

    def add(self, case: PytestCase) -> None:
        self.tests += 1
        self.time += case.time or 0.0
        for entry in case.result:
            if isinstance(entry, Failure):
                self.failures += 1
            elif isinstance(entry, Error):
                self.errors += 1
            elif isinstance(entry, Skipped):
                self.skipped += 1

    def attributes(self) -> str:
        return (
            f'tests="{self.tests}" failures="{self.failures}" errors="{self.errors}" '
            f'skipped="{self.skipped}" time="{round(self.time, 3)}"'
        )


def _testcases(build: BuildReport) -> Iterator[PytestCase]:
    for history in build.cases:
        yield _testcase(history, build.trust.standing(history.final.nodeid))
    for test in build.not_run:
        yield _not_run_testcase(test.unit, f"not run: {test.why()}")


#: Testcases serialized per call: ElementTree's set-up per call costs as much as a small case.
BATCH = 500


def write_junit(build: BuildReport, path: Path, suite_name: str = "pytest") -> None:
    """Write the merged JUnit file, a batch of testcases at a time.

    Streamed, not built as one tree: junitparser's pretty writer parses the whole document
    again into a DOM, several hundred MB for 100,000 tests. The cases go to a temporary
    file first, as the totals in the suite's opening tag are known only after the last.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    totals = _Totals()
    with tempfile.TemporaryFile() as body:
        batch, held = TestSuite("batch"), 0  # junitparser's len() walks the whole suite
        for case in _testcases(build):
            totals.add(case)
            batch.append(case)
            held += 1
            if held == BATCH:
                body.write(_inner_xml(batch))
                batch, held = TestSuite("batch"), 0
        if held:
            body.write(_inner_xml(batch))
        body.seek(0)
        with path.open("wb") as out:
            out.write(b'<?xml version="1.0" encoding="utf-8"?>\n')
            out.write(f"<testsuites {totals.attributes()}>\n".encode())
            name = quoteattr(suite_name)
            out.write(f"  <testsuite name={name} {totals.attributes()}>".encode())
            shutil.copyfileobj(body, out)
            out.write(b"\n  </testsuite>\n</testsuites>\n")


def _inner_xml(batch: TestSuite) -> bytes:
    """The testcases of `batch`, serialized, one to a line. In serialized XML a ``<`` is
    always markup (text and attributes carry ``&lt;``), so the split is safe."""
    xml: bytes = batch.tostring()
    inner = xml[xml.index(b">") + 1 : xml.rindex(b"</testsuite>")]
    return inner.replace(b"<testcase ", b"\n    <testcase ")
