"""Snapshots of wall time and CPU around a measured phase."""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from garrison.planning.procstat import MachineCpu, Services, processes_cpu_seconds


@dataclass(frozen=True, slots=True)
class Snapshot:
    wall: float
    measured_cpu: float  # the server's process trees, or the baseline process
    client_cpu: float  # this process when it is a load generator, else NaN
    machine_busy: float
    services: dict[int, float] = field(default_factory=dict)  # pid -> CPU s (PostgreSQL, Redis)


@dataclass(frozen=True, slots=True)
class Usage:
    wall: float
    measured_cpu: float
    client_cpu: float
    services_cpu: float  # PostgreSQL backends and Redis; NaN when the phase uses neither
    other_cores: float  # cores kept busy by none of these: other engineers' tests, the OS


class Meter:
    """`server_pids=None` means the measured code runs in this very process (baseline);
    otherwise the CPU of every listed process tree is summed (an API process plus worker
    processes). `services` are read on the side (see procstat)."""

    def __init__(self, server_pids: Sequence[int] | None, services: Services | None = None) -> None:
        self._server_pids = server_pids
        self._services = services or Services()

    def snapshot(self) -> Snapshot:
        machine = MachineCpu.read().busy
        own = time.process_time()
        services = self._services.cpu_by_pid()
        if self._server_pids is None:
            return Snapshot(time.perf_counter(), own, math.nan, machine, services)
        server = processes_cpu_seconds(self._server_pids)
        return Snapshot(time.perf_counter(), server, own, machine, services)

    def between(self, before: Snapshot, after: Snapshot) -> Usage:
        wall = after.wall - before.wall
        measured = after.measured_cpu - before.measured_cpu
        client = after.client_cpu - before.client_cpu
        # A backend that appeared during the phase counts whole; one that exited during it
        # is lost (pools keep their connections, so this is rare).
        services = sum(cpu - before.services.get(pid, 0.0) for pid, cpu in after.services.items())
        ours = measured + (0.0 if math.isnan(client) else client) + services
        others = (after.machine_busy - before.machine_busy - ours) / wall if wall > 0 else 0.0
        services_cpu = services if self._services else math.nan
        return Usage(wall, measured, client, services_cpu, max(others, 0.0))
