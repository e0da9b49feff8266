"""Balance: how close the queue's makespan comes to the best possible, against peers.

A synthetic suite of sleeping tests (per worker 25 short ones, and workers / 2 + 1 long ones
of 35 to 80 % of a worker's share; total sleep scaled so each configuration takes a few
seconds) runs over N local workers started at staggered times, three ways, in the same run:

- ``queue, recorded``: N `ciqueue-gha worker` processes and a `ciqueue-gha summary` sharing
  a build on a private Redis; the workers get ``--durations-file`` with recorded durations,
  and the leader queues the longest first.
- ``queue, random``: the same with no durations known (Redis flushed, no file), and the
  collection order shuffled (a seeded ``pytest_collection_modifyitems`` in the suite's
  conftest, one seed for every worker of a run): the queue order is random with respect to
  the durations, and the workers run as they do when nothing was ever measured.
- ``pytest-split``: N plain pytest processes, ``--splits N --group i --splitting-algorithm
  least_duration --durations-path FILE``, FILE holding the same recorded durations in
  pytest-split's format: a static split, run as pytest-split runs.

Durations are noisy from run to run: each test sleeps its base duration times a factor drawn
for that run from a seeded RNG (+-20 %). The recorded durations are those of an earlier
build: each base duration times that build's own draw, never the draw of a measured run.
The three strategies of one repeat sleep the same factors; their order is shuffled.

Every test writes when it started and ended (wall clock) and every pytest process when its
collection finished (it is ready to run tests). With s_i the moment worker i was ready, s0
the earliest, t_j what test j actually slept:

    makespan    = last test's end - s0
    lower bound = max(longest t_j, (sum t_j + sum (s_i - s0)) / N)

Start-up (interpreter, imports, collection) is outside both, since the workers of a real
matrix start at unrelated times anyway (that is what the stagger stands for); everything a
worker does between tests (pytest's protocol, Redis round trips) counts against the
makespan. Ratio = makespan / lower bound; the row shows the median repeat. Targets: the
duration-ordered queue within 1.10, and below both the random-order queue and pytest-split,
at every worker count. Each test must run exactly once, and every process exit 0.

    python -m benchmarks.balance [--workers 4 8] [--repeats 3] [--seconds 2.5] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ciqueue_gha.connection import connect
from ciqueue_gha.redis_server import PrivateRedis

WORKERS = (4, 8)
REPEATS = 3
#: Seconds of sleep per worker: the ideal makespan of a configuration.
SECONDS = 2.5
SEED = 1
TARGET = 1.10

#: Short tests per worker, and long ones (workers // 2 + 1), each 35 % to 80 % of SECONDS.
SHORT_PER_WORKER = 25
LONG_SHARE = (0.35, 0.80)
#: Each test sleeps its base duration times uniform(1 - NOISE, 1 + NOISE), drawn per run.
NOISE = 0.20
#: Worker i starts i * STAGGER * SECONDS after worker 0.
STAGGER = 0.08
#: A run that takes longer than this has hung: its processes are killed and the benchmark fails.
RUN_LIMIT = 120.0

RECORDED = "queue, recorded"
RANDOM = "queue, random"
SPLIT = "pytest-split"
STRATEGIES = (RECORDED, RANDOM, SPLIT)

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


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


class Processes:
    """Processes of one run, each in its own process group; `stop` kills what is left."""

    def __init__(self, cwd: Path, env: dict[str, str], log_dir: Path) -> None:
        self.cwd = cwd
        self.env = env
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.log_dir / f"{name}.out"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(Process(name, popen, log))

    def start_staggered(self, argvs: list[list[str]], delay: float) -> None:
        """Start worker i at i * delay seconds after the first."""
        origin = time.monotonic()
        for index, argv in enumerate(argvs):
            wait = origin + index * delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.start(f"worker-{index}", argv)

    def wait_all(self, limit: float) -> None:
        """Wait until every process has exited 0; the first to fail, or `limit`, ends the run."""
        deadline = time.monotonic() + limit
        running = list(self.started)
        while running:
            for process in list(running):
                code = process.popen.poll()
                if code is None:
                    continue
                running.remove(process)
                if code != 0:
                    raise BenchmarkError(
                        f"{process.name} exited {code}; its output: {self.tail(process)}"
                    )
            if running and time.monotonic() > deadline:
                raise BenchmarkError(
                    f"{running[0].name} still running after {limit:g} s; its output: "
                    f"{self.tail(running[0])}"
                )
            time.sleep(0.05)

    @staticmethod
    def tail(process: Process, lines: int = 20) -> str:
        text = process.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def stop(self) -> None:
        for process in self.started:
            if process.popen.poll() is None:
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()


@contextmanager
def processes(cwd: Path, env: dict[str, str], log_dir: Path) -> Iterator[Processes]:
    group = Processes(cwd, env, log_dir)
    try:
        yield group
    finally:
        group.stop()


def clean_environ() -> dict[str, str]:
    """This process's environment without anything that would reconfigure the runs."""
    drop = ("CIQUEUE_", "GITHUB_", "PYTEST_")
    return {name: value for name, value in os.environ.items() if not name.startswith(drop)}


#: The suite needs none of the plugins a development environment may hold (hypothesis's alone
#: adds a second to every pytest exit on a busy machine): kept out of every strategy's runs.
UNUSED_PLUGINS = ["cacheprovider", "hypothesispytest", "xdist", "xdist.looponfail", "anyio"]
PYTEST_ARGS = ["-q", *(f"-pno:{name}" for name in UNUSED_PLUGINS), "test_balance.py"]


@dataclass
class Bench:
    root: Path
    redis_url: str
    seconds: float
    runs: int = 0

    def _fresh(self, label: str) -> tuple[Path, dict[str, str]]:
        """A log folder and the environment of one run; Redis emptied (no durations left)."""
        self.runs += 1
        log_dir = self.root / f"run-{self.runs:02d}-{label}"
        log_dir.mkdir()
        with closing(connect(self.redis_url)) as client:
            client.flushall()
        env = clean_environ()
        env.update(BALANCE_LOG=str(log_dir), BALANCE_NOISE=repr(NOISE))
        return log_dir, env

    def queue_run(
        self,
        suite: Suite,
        noise_seed: str,
        *,
        durations_file: Path | None,
        shuffle_seed: str | None,
        delay: float,
    ) -> Path:
        """Workers and a summary on one build; returns the folder the tests logged to."""
        log_dir, env = self._fresh(f"queue-{suite.workers}")
        env["BALANCE_NOISE_SEED"] = noise_seed
        if shuffle_seed is not None:
            env["BALANCE_SHUFFLE_SEED"] = shuffle_seed
        cli = [sys.executable, "-m", "ciqueue_gha.cli"]
        build = ["--redis-url", self.redis_url, "--build-id", f"balance-{self.runs}"]
        summary = [*cli, "summary", *build, "--junit-xml", str(log_dir / "junit.xml")]
        workers = []
        for index in range(suite.workers):
            argv = [*cli, "worker", *build, "--worker-id", f"w{index}"]
            if durations_file is not None:
                argv += ["--durations-file", str(durations_file)]
            workers.append([*argv, "--", *PYTEST_ARGS])
        with processes(suite.directory, env, log_dir) as group:
            group.start("summary", summary)
            group.start_staggered(workers, delay)
            group.wait_all(RUN_LIMIT)
        return log_dir

    def split_run(self, suite: Suite, noise_seed: str, durations_path: Path, delay: float) -> Path:
        """N plain pytest processes, one pytest-split group each."""
        log_dir, env = self._fresh(f"split-{suite.workers}")
        env["BALANCE_NOISE_SEED"] = noise_seed
        split = ["--splits", str(suite.workers), "--splitting-algorithm", "least_duration"]
        split += ["--durations-path", str(durations_path)]
        argvs = [
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, *split, "--group", str(group)]
            for group in range(1, suite.workers + 1)
        ]
        with processes(suite.directory, env, log_dir) as group:
            group.start_staggered(argvs, delay)
            group.wait_all(RUN_LIMIT)
        return log_dir


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


def run_configuration(
    bench: Bench, suite: Suite, seed: int, repeats: int
) -> dict[str, list[Measurement]]:
    recorded, split_durations = record(bench.root, suite, seed)
    delay = STAGGER * bench.seconds
    results: dict[str, list[Measurement]] = {strategy: [] for strategy in STRATEGIES}
    for repeat in range(repeats):
        noise_seed = f"run:{seed}:{suite.workers}:{repeat}"
        order = list(STRATEGIES)
        random.Random(noise_seed).shuffle(order)  # no strategy always runs first
        for strategy in order:
            if strategy == RECORDED:
                log_dir = bench.queue_run(
                    suite, noise_seed, durations_file=recorded, shuffle_seed=None, delay=delay
                )
            elif strategy == RANDOM:
                log_dir = bench.queue_run(
                    suite, noise_seed, durations_file=None, shuffle_seed=noise_seed, delay=delay
                )
            else:
                log_dir = bench.split_run(suite, noise_seed, split_durations, delay)
            results[strategy].append(measure(suite, strategy, log_dir))
    return results


@dataclass(frozen=True)
class Row:
    workers: int
    strategy: str
    makespan: float
    lower_bound: float
    ratio: float
    ratios: list[float]

    @classmethod
    def of(cls, measurements: Sequence[Measurement]) -> Row:
        """The median repeat by ratio (the lower of the middle two for an even count)."""
        ranked = sorted(measurements, key=lambda m: m.ratio)
        median = ranked[(len(ranked) - 1) // 2]
        return cls(
            median.workers,
            median.strategy,
            median.makespan,
            median.lower_bound,
            median.ratio,
            [m.ratio for m in measurements],
        )

    def line(self) -> str:
        each = " ".join(f"{ratio:.3f}" for ratio in self.ratios)
        return (
            f"{self.workers:>7}  {self.strategy:<16} {self.makespan:>8.2f} s "
            f"{self.lower_bound:>8.2f} s {self.ratio:>6.3f}   {each}"
        )


HEADER = (
    f"{'workers':>7}  {'strategy':<16} {'makespan':>10} {'lower bound':>10} {'ratio':>6}   each"
)


def verdicts(rows: list[Row], target: float) -> list[str]:
    """What missed its target, one line each; empty when every target was met."""
    missed = []
    for workers in sorted({row.workers for row in rows}):
        by = {row.strategy: row for row in rows if row.workers == workers}
        ours = by[RECORDED]
        if ours.ratio > target:
            missed.append(f"{workers} workers: {RECORDED} at {ours.ratio:.3f} > {target:g}")
        for peer in (RANDOM, SPLIT):
            if ours.ratio >= by[peer].ratio:
                missed.append(
                    f"{workers} workers: {RECORDED} at {ours.ratio:.3f} is not ahead of "
                    f"{peer} at {by[peer].ratio:.3f}"
                )
    return missed


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=list(WORKERS))
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per configuration")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="sleep per worker")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--keep", type=Path, help="keep the suites and every log here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        import pytest_split  # noqa: F401
    except ImportError:
        print("balance: pytest-split is not installed (pip install -e '.[test]')")
        return 2
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ciqueue-balance-") as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        with PrivateRedis() as server:
            bench = Bench(root, server.url, args.seconds)
            for workers in args.workers:
                suite = make_suite(root, workers, args.seconds, args.seed)
                print(
                    f"{workers} workers: {len(suite.base)} tests ({suite.long_tests} long), "
                    f"{sum(suite.base.values()):.1f} s of sleep (+-{NOISE:.0%} a run), "
                    f"starts {STAGGER * args.seconds:.2f} s apart",
                    flush=True,
                )
                try:
                    results = run_configuration(bench, suite, args.seed, args.repeats)
                except BenchmarkError as exc:
                    print(f"balance: FAILED, {exc}")
                    return 1
                rows += [Row.of(results[strategy]) for strategy in STRATEGIES]
    print(HEADER)
    print("\n".join(row.line() for row in rows))
    print(f"({args.repeats} repeats each, {time.monotonic() - started:.0f} s in all)")
    missed = verdicts(rows, args.target)
    for line in missed:
        print(f"balance: FAILED, {line}")
    if not missed:
        print(
            f"balance: ok, the duration-ordered queue within {args.target:g} of the lower "
            "bound and ahead of the random-order queue and pytest-split"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
