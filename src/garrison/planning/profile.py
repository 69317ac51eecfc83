"""A measured profile: what one request of each kind costs on a given machine and graph.

Written by `garrison bench profile`, read by `garrison plan`. Every number is a
measurement (see `measure.py` for how each one is taken); the JSON keeps the raw phases so
a reader can recompute any per-request figure.
"""

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1

# The request kinds a profile measures; a user request in the plan is one `run.stream`.
REQUEST_KINDS = ("thread.create", "run.wait", "run.stream", "state.get")


class ProfileError(ValueError):
    """A profile file that is missing, unreadable or of another format."""


@dataclass(frozen=True, slots=True)
class RequestCost:
    """What one request of a kind costs, averaged over a phase."""

    api_cpu_seconds: float  # API process tree(s)
    worker_cpu_seconds: float  # worker process tree(s); 0 when the API process runs runs
    db_cpu_seconds: float  # PostgreSQL backends of the profile's database (0 on SQLite)
    redis_cpu_seconds: float  # the Redis server (0 without Redis)
    bytes_in: float  # HTTP request bytes (request line, headers, body)
    bytes_out: float  # HTTP response bytes (status line, headers, body)


@dataclass(frozen=True, slots=True)
class Phase:
    """One measured phase, raw: `requests` of `kind` at `concurrency` took `wall_seconds`."""

    kind: str
    requests: int
    concurrency: int
    wall_seconds: float
    api_cpu_seconds: float
    worker_cpu_seconds: float
    db_cpu_seconds: float
    redis_cpu_seconds: float
    bytes_in: int
    bytes_out: int
    errors: int = 0
    rate: float | None = None  # paced arrival rate asked for; None: closed loop

    def cost(self) -> RequestCost:
        n = max(self.requests, 1)
        return RequestCost(
            api_cpu_seconds=self.api_cpu_seconds / n,
            worker_cpu_seconds=self.worker_cpu_seconds / n,
            db_cpu_seconds=self.db_cpu_seconds / n,
            redis_cpu_seconds=self.redis_cpu_seconds / n,
            bytes_in=self.bytes_in / n,
            bytes_out=self.bytes_out / n,
        )


@dataclass(frozen=True, slots=True)
class Memory:
    api_base_bytes: float  # API process RSS at rest after warm-up
    worker_base_bytes: float  # worker process RSS at rest (0 when combined)
    per_active_run_bytes: float  # worker RSS growth per run in flight
    per_sse_stream_bytes: float  # API RSS growth per open SSE stream


@dataclass(frozen=True, slots=True)
class Storage:
    db_bytes_per_run: float  # database growth per run at the profile's payload
    db_bytes_per_payload_byte: float  # slope: extra database bytes per payload byte
    db_bytes_per_checkpoint: float | None  # checkpoint tables' growth per checkpoint
    checkpoints_per_run: float | None
    net_bytes_per_payload_byte: float  # slope: extra HTTP bytes per payload byte
    redis_bytes_per_live_stream: float | None  # Redis memory per retained run event log
    redis_bytes_per_payload_byte: float | None = None  # slope of the above


@dataclass(frozen=True, slots=True)
class Profile:
    machine: dict[str, Any]
    topology: str
    graph: str
    payload_bytes: int  # input + output bytes per run in the run phases
    measured_at: str
    requests: dict[str, RequestCost]
    idle_api_cores: float  # cores one API process burns with no load
    idle_worker_cores: float  # the same per worker process
    memory: Memory
    storage: Storage
    phases: list[Phase] = field(default_factory=list)
    version: int = FORMAT_VERSION

    @property
    def combined(self) -> bool:
        """True when one process both serves HTTP and executes runs (embedded, postgres):
        its CPU cannot be split between API and worker."""
        return self.topology != "split"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Profile":
        if data.get("version") != FORMAT_VERSION:
            raise ProfileError(
                f"profile format version {data.get('version')!r}, expected {FORMAT_VERSION}"
            )
        try:
            return cls(
                machine=dict(data["machine"]),
                topology=str(data["topology"]),
                graph=str(data["graph"]),
                payload_bytes=int(data["payload_bytes"]),
                measured_at=str(data["measured_at"]),
                requests={k: RequestCost(**v) for k, v in data["requests"].items()},
                idle_api_cores=float(data["idle_api_cores"]),
                idle_worker_cores=float(data["idle_worker_cores"]),
                memory=Memory(**data["memory"]),
                storage=Storage(**data["storage"]),
                phases=[Phase(**p) for p in data.get("phases", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"malformed profile: {exc}") from exc

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def load_profile(path: Path) -> Profile:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path} is not a profile object")
    return Profile.from_json(data)


def reference_profile() -> Profile:
    """The profile measured on Garrison's development machine and shipped with it."""
    text = resources.files("garrison.planning").joinpath("reference_profile.json").read_text()
    return Profile.from_json(json.loads(text))
