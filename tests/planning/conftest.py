"""A hand-made profile whose numbers are easy to follow in the plan's arithmetic."""

import pytest

from garrison.planning.profile import Memory, Profile, RequestCost, Storage

MIB = 1024 * 1024


def _cost(api: float, worker: float, db: float, out: float = 1000) -> RequestCost:
    return RequestCost(
        api_cpu_seconds=api,
        worker_cpu_seconds=worker,
        db_cpu_seconds=db,
        redis_cpu_seconds=0.0,
        bytes_in=500,
        bytes_out=out,
    )


@pytest.fixture
def simple_profile() -> Profile:
    return Profile(
        machine={"name": "test machine"},
        topology="split",
        graph="echo",
        payload_bytes=0,
        measured_at="2026-01-01T00:00:00+00:00",
        requests={
            "thread.create": _cost(0.001, 0.0, 0.0005),
            "run.wait": _cost(0.004, 0.010, 0.005),
            "run.stream": _cost(0.006, 0.010, 0.005, out=5000),
            "state.get": _cost(0.001, 0.0, 0.0005),
        },
        idle_api_cores=0.0,
        idle_worker_cores=0.0,
        memory=Memory(
            api_base_bytes=128 * MIB,
            worker_base_bytes=128 * MIB,
            per_active_run_bytes=1 * MIB,
            per_sse_stream_bytes=64 * 1024,
        ),
        storage=Storage(
            db_bytes_per_run=20_000,
            db_bytes_per_payload_byte=5.0,
            db_bytes_per_checkpoint=4000,
            checkpoints_per_run=3,
            net_bytes_per_payload_byte=1.0,
            redis_bytes_per_live_stream=16_000,
            redis_bytes_per_payload_byte=2.0,
        ),
    )
