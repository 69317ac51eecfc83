"""CPU accounting from /proc (Linux only).

The server's CPU is read from outside: utime+stime of the process (all its threads, so
the SQLite connection threads are included), plus its waited-for children (cutime+cstime),
plus any live descendants. Resolution is one clock tick (usually 10 ms), which is why
phases should cost well over a second of CPU.

PostgreSQL and Redis are not children of anything we start, yet on those deployments they
do a good part of the work of every run; left out, their CPU would count as "other cores"
and the noise gauge would read high on a quiet machine. So they are read separately: the
PostgreSQL backends serving one database (found by their process title) and the Redis
server's process.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def _own_ticks(pid: int, *, with_waited_children: bool) -> int:
    fields = _stat_fields(pid)
    # After the command name, index 0 is field 3 (state): utime=14, stime=15,
    # cutime=16, cstime=17 in proc(5) numbering.
    ticks = int(fields[11]) + int(fields[12])
    if with_waited_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by `pid`, its reaped children and its live descendants."""
    total = _own_ticks(pid, with_waited_children=True)
    pending = _children(pid)
    while pending:
        child = pending.pop()
        try:
            # A live child's own waited-for children are not yet in our cutime.
            total += _own_ticks(child, with_waited_children=True)
            pending.extend(_children(child))
        except OSError:
            continue  # exited between listing and reading: its time moves to our cutime
    return total / _TICKS_PER_SECOND


def processes_cpu_seconds(pids: Iterable[int]) -> float:
    """The sum of `process_tree_cpu_seconds` over several processes (an API process and its
    worker processes, say)."""
    return sum(process_tree_cpu_seconds(pid) for pid in pids)


def postgres_backends(database: str) -> list[int]:
    """Pids of the PostgreSQL backends connected to `database`. A backend's title is
    `postgres: <cluster>: <user> <database> <client> <activity>`; benchmark databases have
    unique names, so the name between spaces identifies ours."""
    needle = f" {database} ".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and needle in title:
            found.append(int(entry.name))
    return found


@dataclass(frozen=True, slots=True)
class Services:
    """The processes outside our own trees whose CPU a phase causes: the backends of one
    PostgreSQL database and one Redis server (either may be absent)."""

    postgres_database: str | None = None
    redis_pid: int | None = None

    def __bool__(self) -> bool:
        return self.postgres_database is not None or self.redis_pid is not None

    def cpu_by_pid(self) -> dict[int, float]:
        """CPU seconds so far of every such process alive now. Backends come and go with
        connection pools, so callers compare snapshots pid by pid."""
        pids = postgres_backends(self.postgres_database) if self.postgres_database else []
        if self.redis_pid is not None:
            pids.append(self.redis_pid)
        found = {}
        for pid in pids:
            try:
                found[pid] = _own_ticks(pid, with_waited_children=False) / _TICKS_PER_SECOND
            except OSError:
                continue  # exited since the listing
        return found


@dataclass(frozen=True, slots=True)
class MachineCpu:
    """Machine-wide CPU seconds (all cores) from /proc/stat."""

    busy: float
    total: float

    @classmethod
    def read(cls) -> "MachineCpu":
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
        idle = fields[3] + fields[4]
        total = sum(fields[:8])
        return cls(busy=(total - idle) / _TICKS_PER_SECOND, total=total / _TICKS_PER_SECOND)


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS in /proc/<pid>/status), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def rss_mib(pid: int) -> float:
    """Resident set size of one process, in MiB."""
    return rss_bytes(pid) / (1024 * 1024)
