"""The synthetic suite of benchmarks.balance, the durations an earlier build recorded for
it, and what a run's logs say: its makespan and the lower bound (see benchmarks.balance)."""

from __future__ import annotations

import json
import random
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: Short tests per worker; long ones (workers // 2 + 1), each 35 % to 80 % of a worker's sleep.
SHORT_PER_WORKER = 25
LONG_SHARE = (0.35, 0.80)
#: Each test sleeps its base duration times uniform(1 - NOISE, 1 + NOISE), drawn per run.
NOISE = 0.20


TEST_MODULE = textwrap.dedent(
    '''\
    """Sleeping tests for benchmarks.balance: base duration x a per-run noise factor."""

    import json
    import os
    import random
    import time

    import pytest

    BASE = json.loads(open(os.path.join(os.path.dirname(__file__), "base.json")).read())


    @pytest.mark.parametrize("name", sorted(BASE))
    def test_sleep(name):
        noise = float(os.environ["BALANCE_NOISE"])
        seed = os.environ["BALANCE_NOISE_SEED"]
        factor = random.Random(f"{seed}:{name}").uniform(1 - noise, 1 + noise)
        start = time.time()
        time.sleep(BASE[name] * factor)
        end = time.time()
        line = {"kind": "test", "id": name, "start": start, "end": end, "pid": os.getpid()}
        with open(os.path.join(os.environ["BALANCE_LOG"], f"{os.getpid()}.jsonl"), "a") as log:
            log.write(json.dumps(line) + "\\n")
    '''
)

CONFTEST = textwrap.dedent(
    '''\
    """Ready lines for benchmarks.balance, and a seeded shuffle of the collection order."""

    import json
    import os
    import random
    import time


    def pytest_collection_modifyitems(session, config, items):
        seed = os.environ.get("BALANCE_SHUFFLE_SEED")
        if seed:
            random.Random(seed).shuffle(items)


    def pytest_collection_finish(session):
        line = {"kind": "ready", "time": time.time(), "pid": os.getpid()}
        with open(os.path.join(os.environ["BALANCE_LOG"], f"{os.getpid()}.jsonl"), "a") as log:
            log.write(json.dumps(line) + "\\n")
    '''
)


@dataclass(frozen=True)
class Suite:
    workers: int
    directory: Path
    base: dict[str, float]  # test name (its parameter) -> base seconds

    def nodeid(self, name: str) -> str:
        return f"test_balance.py::test_sleep[{name}]"

    @property
    def long_tests(self) -> int:
        return self.workers // 2 + 1


def make_suite(root: Path, workers: int, seconds: float, seed: int) -> Suite:
    """The suite for `workers` workers: total base sleep workers x seconds, skewed."""
    rng = random.Random(f"suite:{seed}:{workers}")
    long = [rng.uniform(*LONG_SHARE) * seconds for _ in range(workers // 2 + 1)]
    short = [rng.lognormvariate(0.0, 0.6) for _ in range(SHORT_PER_WORKER * workers)]
    scale = (workers * seconds - sum(long)) / sum(short)
    durations = [value * scale for value in short] + long
    rng.shuffle(durations)
    base = {f"t{index:04d}": round(value, 4) for index, value in enumerate(durations)}
    directory = root / f"suite-{workers}"
    directory.mkdir()
    (directory / "base.json").write_text(json.dumps(base, indent=1) + "\n")
    (directory / "test_balance.py").write_text(TEST_MODULE)
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "pytest.ini").write_text("[pytest]\n")
    return Suite(workers, directory, base)


@dataclass(frozen=True)
class Measurement:
    workers: int
    strategy: str
    makespan: float
    lower_bound: float

    @property
    def ratio(self) -> float:
        return self.makespan / self.lower_bound


def measure(suite: Suite, strategy: str, log_dir: Path) -> Measurement:
    """Makespan and lower bound from the lines the tests and the pytest processes wrote."""
    ready: dict[int, float] = {}
    runs: list[tuple[str, float, float]] = []
    for path in log_dir.glob("*.jsonl"):
        for text in path.read_text().splitlines():
            line = json.loads(text)
            if line["kind"] == "ready":
                ready[int(line["pid"])] = float(line["time"])
            else:
                runs.append((str(line["id"]), float(line["start"]), float(line["end"])))
    counts = Counter(name for name, _, _ in runs)
    if set(counts) != set(suite.base) or max(counts.values()) != 1:
        twice = sorted(name for name, count in counts.items() if count > 1)
        missing = sorted(set(suite.base) - set(counts))
        raise BenchmarkError(
            f"{strategy}, {suite.workers} workers: each test must run once; "
            f"missing {missing[:5]}, run twice {twice[:5]}"
        )
    if len(ready) != suite.workers:
        raise BenchmarkError(
            f"{strategy}: {len(ready)} pytest processes said they were ready, "
            f"expected {suite.workers}"
        )
    first = min(ready.values())
    slept = [end - start for _, start, end in runs]
    delays = sum(moment - first for moment in ready.values())
    lower_bound = max(max(slept), (sum(slept) + delays) / suite.workers)
    makespan = max(end for _, _, end in runs) - first
    return Measurement(suite.workers, strategy, makespan, lower_bound)


class BenchmarkError(Exception):
    """A run did not do what it should (exit code, lost test): no figure can be trusted."""


def noise_factor(seed: str, name: str) -> float:
    """The factor test `name` sleeps its base duration times in the run seeded `seed`: the
    suite's own formula (TEST_MODULE)."""
    return random.Random(f"{seed}:{name}").uniform(1 - NOISE, 1 + NOISE)


def record(root: Path, suite: Suite, seed: int) -> tuple[Path, Path]:
    """The durations an earlier build measured: each test's base duration times that build's
    own noise draw (never the draw of a measured run). Written as the JSON of
    ``--durations-file`` (what a summary writes) and as pytest-split's durations file (what
    ``--store-durations`` writes): the same numbers for both.

    Returns (ciqueue's file, pytest-split's file)."""
    recording = f"record:{seed}"
    measured = {
        suite.nodeid(name): round(base * noise_factor(recording, name), 4)
        for name, base in suite.base.items()
    }
    recorded = root / f"recorded-{suite.workers}.json"
    recorded.write_text(json.dumps(measured, sort_keys=True, indent=1) + "\n")
    split = root / f"test_durations-{suite.workers}.json"
    split.write_text(json.dumps(measured, sort_keys=True, indent=4))
    return recorded, split
