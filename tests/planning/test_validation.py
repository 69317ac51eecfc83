"""The model against reality: `garrison bench profile` at two load levels on this machine.

The profiles pace their phases at a fixed arrival rate, 40 or 80 requests/s: busy
processes, as the planner sizes them, yet below what this 2-core machine saturates at. A
lightly loaded process pays more CPU per request than a busy one (colder caches, a wake-up
per request), so a profile taken at a low rate overestimates a busier pod: on this machine,
20/s predicted 40/s 12-33 % high (2026-11-22, docs/capacity.md), which is why the levels
are not lower. The 40/s profiles give CPU per request; from it, the planner's CPU formula
predicts what the Garrison processes burn at the 80/s profiles' rates. /proc must agree
within 25 %.

Two profiles per rate, taken low, high, high, low: the machine has slow windows (after the
rest of the test suite in CI, a 40/s profile cost 28 % more CPU than the 80/s one taken
next predicted from it, where 5-15 % is usual); in this order a slow window moves both
sides instead of reading as a model error (`garrison.planning.validate`).
"""

import subprocess
import sys
from pathlib import Path

import pytest

from garrison.planning.plan import Workload, make_plan
from garrison.planning.profile import Profile, load_profile
from garrison.planning.validate import predict_cpu


def _profile(tmp_path: Path, name: str, rate: float) -> Profile:
    output = tmp_path / f"{name}.json"
    command = [
        sys.executable,
        "-m",
        "garrison",
        "bench",
        "profile",
        "--topology",
        "split",
        "--concurrency",
        "8",
        "--rate",
        str(rate),
        "--requests",
        "60",
        "--streams",
        "100",
        "--output",
        str(output),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "CPU ms and bytes per request" in done.stdout  # the summary table
    return load_profile(output)


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_planner_predicts_cpu_at_a_second_load_level(tmp_path: Path) -> None:
    low_1 = _profile(tmp_path, "low-1", rate=40)
    high_1 = _profile(tmp_path, "high-1", rate=80)
    high_2 = _profile(tmp_path, "high-2", rate=80)
    low_2 = _profile(tmp_path, "low-2", rate=40)

    for profile in (low_1, high_1, high_2, low_2):  # every figure the planner needs
        run = profile.requests["run.stream"]
        assert run.api_cpu_seconds > 0 and run.worker_cpu_seconds > 0
        assert run.db_cpu_seconds > 0 and run.bytes_out > run.bytes_in > 0
        assert profile.memory.per_sse_stream_bytes > 0
        assert profile.storage.db_bytes_per_run > 0
        assert profile.storage.checkpoints_per_run and profile.storage.checkpoints_per_run >= 1
        assert profile.storage.db_bytes_per_payload_byte > 0
        assert profile.storage.redis_bytes_per_live_stream
        assert make_plan(profile, Workload(), "measured").worker.replicas >= 2

    checks = {c.kind: c for c in predict_cpu([low_1, low_2], [high_1, high_2])}
    at_low_rate = {c.kind: c for c in predict_cpu([low_1, low_2], [low_1, low_2])}
    assert checks["run.stream"].rate > 1.5 * at_low_rate["run.stream"].rate  # a higher load
    total = checks["total"]
    report = ", ".join(
        f"{c.kind}: predicted {c.predicted_cpu_seconds:.2f}s measured {c.measured_cpu_seconds:.2f}s"
        for c in checks.values()
    )
    assert abs(total.error) <= 0.25, report
