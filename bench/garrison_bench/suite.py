"""The whole benchmark: for each topology, deploy it, run its phases (each in a
subprocess), stop it; collect the results.

Within a topology, phases are grouped by concurrency, each group running the baselines its
scenarios are compared with first and then the server scenarios, so a scenario and its
baseline are measured minutes apart at most, under similar background load. A baseline
already measured at that concurrency for an earlier topology is not measured again (postgres
and split share theirs). On split, the background scenarios run once more after a second
worker process has joined, to see whether background throughput scales out.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from garrison_bench.loadgen import SCENARIOS
from garrison_bench.projectgraphs import CONFIG_FILE
from garrison_bench.stats import PhaseResult, baseline_name
from garrison_bench.topology import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    TOPOLOGIES,
    Deployment,
    deploy,
    redis_server_pid,
)

BENCH_DIR = Path(__file__).resolve().parent.parent
PHASE_TIMEOUT_SECONDS = 1800.0
# Run again on split once a second worker process has joined.
SCALE_OUT_SCENARIOS = ("background_throughput", "background_drain")


@dataclass(frozen=True, slots=True)
class BaselineSpec:
    graph: str
    checkpointer: str  # "sqlite", "postgres" or "none"
    synchronous: str = "normal"  # SQLite only; "full" is the stock saver's setting

    @property
    def name(self) -> str:
        return baseline_name(self.graph, self.checkpointer, self.synchronous)


# The graph each scenario runs; its baseline runs the same graph in-process.
SCENARIO_GRAPH: dict[str, str] = {
    "thread_wait_1": "one_node",
    "thread_wait_5": "five_node",
    "stateless_wait": "one_node",
    "stream_ttfe": "one_node",
    "background_throughput": "one_node",
    "background_drain": "one_node",
}
# The checkpointer each topology's server uses, which its baselines use too.
TOPOLOGY_CHECKPOINTER: dict[str, str] = {
    "embedded": "sqlite",
    "postgres": "postgres",
    "split": "postgres",
}
# The official SQLite saver as a user gets it (fsync per commit): the configuration of the
# reference numbers the embedded targets were set with; measured next to thread_wait_1 on
# embedded for a second comparison.
STOCK_BASELINE = BaselineSpec("one_node", "sqlite", "full")


def baseline_for(scenario: str, topology: str) -> BaselineSpec:
    """What a server scenario is compared with: the same graph run in-process on the
    checkpointer of the topology (stateless runs execute without a checkpointer on the
    server, so their baseline has none whatever the topology)."""
    checkpointer = "none" if scenario == "stateless_wait" else TOPOLOGY_CHECKPOINTER[topology]
    return BaselineSpec(SCENARIO_GRAPH[scenario], checkpointer)


def baselines_for(scenarios: Sequence[str], topology: str) -> list[BaselineSpec]:
    specs = dict.fromkeys(baseline_for(s, topology) for s in scenarios)
    if topology == "embedded" and "thread_wait_1" in scenarios:
        specs[STOCK_BASELINE] = None
    return list(specs)


@dataclass(frozen=True, slots=True)
class Options:
    scenarios: Sequence[str]
    concurrencies: Sequence[int]
    runs: int
    duration: float | None
    warmup: int
    topologies: Sequence[str] = ("embedded",)
    baseline: bool = True
    server_env: dict[str, str] = field(default_factory=dict)
    keep_data: bool = False
    group_size: int = 8
    profile_to: Path | None = None  # cProfile the API process (inflates every server number)
    postgres_url: str = DEFAULT_POSTGRES_URL
    redis_url: str = DEFAULT_REDIS_URL

    def profile_path(self, topology: str) -> Path | None:
        """One profile per topology: out.prof, or out-split.prof etc. when there are several."""
        if self.profile_to is None or len(self.topologies) == 1:
            return self.profile_to
        return self.profile_to.with_stem(f"{self.profile_to.stem}-{topology}")


def _subprocess_env() -> dict[str, str]:
    # The phase modules import `garrison_bench` from bench/, whatever the caller's cwd.
    path = os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def run_phase(module: str, args: list[str]) -> PhaseResult:
    command = [sys.executable, "-m", f"garrison_bench.{module}", *args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=PHASE_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}):\n{done.stderr}")
    return PhaseResult.from_json(json.loads(done.stdout.strip().splitlines()[-1]))


def _measure_args(options: Options, concurrency: int) -> list[str]:
    args = ["--concurrency", str(concurrency), "--runs", str(options.runs)]
    args += ["--warmup", str(options.warmup)]
    if options.duration:
        args += ["--duration", str(options.duration)]
    return args


def _baseline_args(spec: BaselineSpec, data_dir: Path, options: Options) -> list[str]:
    args = ["--graph", spec.graph, "--checkpointer", spec.checkpointer]
    if spec.checkpointer == "postgres":
        return [*args, "--database-url", options.postgres_url]
    return [*args, "--synchronous", spec.synchronous, "--data-dir", str(data_dir)]


def _loadgen_args(scenario: str, deployment: Deployment, options: Options) -> list[str]:
    args = ["--scenario", scenario, "--url", deployment.url]
    args += ["--server-pid", ",".join(str(pid) for pid in deployment.pids)]
    args += ["--group-size", str(options.group_size)]
    if deployment.database_name:
        args += ["--postgres-db", deployment.database_name]
    redis_pid = redis_server_pid(deployment.redis_url) if deployment.redis_url else None
    if redis_pid is not None:
        args += ["--redis-pid", str(redis_pid)]
    return args


def _workers(deployment: Deployment) -> int | None:
    """Worker processes, where they are separate from the API process."""
    return len(deployment.workers) if deployment.name == "split" else None


@dataclass(slots=True)
class SuiteResult:
    results: list[PhaseResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # phases that crashed: no numbers


class _Runner:
    """Runs phases against one deployment at a time and records what they return."""

    def __init__(self, options: Options, progress: Callable[[str], None], scratch: Path) -> None:
        self.options = options
        self.progress = progress
        self.scratch = scratch
        self.suite = SuiteResult()
        self._baselines_done: set[tuple[BaselineSpec, int]] = set()

    def phase(self, label: str, module: str, args: list[str], deployment: Deployment) -> None:
        label = f"[{deployment.name}] {label}"
        self.progress(label)
        try:
            result = run_phase(module, args)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            # One broken phase should not cost the numbers of all the others.
            self.suite.failures.append(f"{label}: {exc}")
            self.progress(f"FAILED {label}: {exc}")
            return
        result.topology = deployment.name
        result.workers = None if result.kind == "baseline" else _workers(deployment)
        self.suite.results.append(result)

    def scenarios(
        self, deployment: Deployment, scenarios: Sequence[str], *, baselines: bool
    ) -> None:
        options = self.options
        for concurrency in options.concurrencies:
            common = _measure_args(options, concurrency)
            for spec in baselines_for(scenarios, deployment.name) if baselines else ():
                if (spec, concurrency) in self._baselines_done:
                    continue
                self._baselines_done.add((spec, concurrency))
                args = [*_baseline_args(spec, self.scratch, options), *common]
                self.phase(f"{spec.name} @ {concurrency}", "baseline", args, deployment)
            for scenario in scenarios:
                args = [*_loadgen_args(scenario, deployment, options), *common]
                self.phase(f"{scenario} @ {concurrency}", "loadgen", args, deployment)

    def topology(self, name: str) -> None:
        options = self.options
        data_dir = self.scratch / name
        deployment: Deployment | None = None
        try:
            with deploy(
                name,
                CONFIG_FILE,
                data_dir,
                env=options.server_env,
                postgres_url=options.postgres_url,
                redis_url=options.redis_url,
                profile_to=options.profile_path(name),
            ) as deployment:
                self.progress(
                    f"[{name}] pids {deployment.pids} on {deployment.url}, data in {data_dir}"
                    + (f", database {deployment.database_name}" if deployment.database_url else "")
                )
                self.scenarios(deployment, options.scenarios, baselines=options.baseline)
                scale_out = [s for s in options.scenarios if s in SCALE_OUT_SCENARIOS]
                if name == "split" and scale_out:
                    worker = deployment.add_worker()
                    self.progress(f"[{name}] second worker pid {worker.pid}")
                    self.scenarios(deployment, scale_out, baselines=False)
        except (RuntimeError, OSError, psycopg.Error, redis.RedisError) as exc:
            # A topology that cannot start (no PostgreSQL, say) costs only its own numbers.
            self.suite.failures.append(f"[{name}] deployment: {exc}")
            self.progress(f"FAILED [{name}] deployment: {exc}")
        if options.keep_data and data_dir.exists():
            kept = Path(tempfile.mkdtemp(prefix=f"garrison-bench-kept-{name}-"))
            shutil.copytree(data_dir, kept, dirs_exist_ok=True)
            self.progress(f"[{name}] data dir (logs; PostgreSQL data is dropped) kept in {kept}")
        ours = [r for r in self.suite.results if r.topology == name and r.kind == "server"]
        failed = any(f.startswith(f"[{name}]") for f in self.suite.failures)
        if deployment is not None and (failed or any(r.errors for r in ours)):
            for process in [deployment.api, *deployment.workers]:
                self.progress(f"{process.log_path} tail:\n" + process.log()[-3000:])


def run_suite(options: Options, progress: Callable[[str], None]) -> SuiteResult:
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenarios: {sorted(unknown)}; choose from {SCENARIOS}")
    unknown = set(options.topologies) - set(TOPOLOGIES)
    if unknown:
        raise ValueError(f"unknown topologies: {sorted(unknown)}; choose from {TOPOLOGIES}")
    with tempfile.TemporaryDirectory(prefix="garrison-bench-") as tmp:
        runner = _Runner(options, progress, Path(tmp))
        for name in options.topologies:
            runner.topology(name)
    return runner.suite


def results_json(
    machine: dict[str, Any], options: Options, suite: SuiteResult, comparisons: Any
) -> dict[str, Any]:
    return {
        "machine": machine,
        "settings": {
            "topologies": list(options.topologies),
            "scenarios": list(options.scenarios),
            "concurrency": list(options.concurrencies),
            "runs": options.runs,
            "duration": options.duration,
            "warmup": options.warmup,
            "server_env": options.server_env,
            "group_size": options.group_size,
            "server_profiled": options.profile_to is not None,
            "postgres_url": options.postgres_url,
            "redis_url": options.redis_url,
        },
        "phases": [r.to_json() for r in suite.results],
        "failed_phases": suite.failures,
        "comparisons": comparisons,
    }
