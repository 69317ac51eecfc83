"""The Prometheus text a scrape returns, in one process or merged across several.

`garrison serve --workers N` runs N processes behind one port, so any of them may answer a
scrape. The command line points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before the
processes start; each process then writes its samples to files there, and a scrape merges
every process's files. Without the variable, a scrape reads the process's own registry.
"""

import os
import shutil
import tempfile
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "multiprocess_dir",
    "prepare_multiprocess_dir",
    "process_exited",
    "render",
]


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir() -> str:
    """Point `PROMETHEUS_MULTIPROC_DIR` at a fresh, empty directory (before the processes
    that inherit it start): samples of a previous server must not leak into this one."""
    path = tempfile.mkdtemp(prefix="garrison-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def process_exited(pid: int | None = None) -> None:
    """Drop an exiting process's `live*` gauge samples from the merged view."""
    if multiprocess_dir() is not None:
        mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]


def render(scrape_time: Iterable[Collector] = ()) -> bytes:
    """The exposition text: this process's (or every process's) metrics, then the
    collectors evaluated at scrape time (one per metric family, never repeated)."""
    if multiprocess_dir() is not None:
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    extra = list(scrape_time)
    if extra:
        registry = CollectorRegistry(auto_describe=False)
        for collector in extra:
            registry.register(collector)
        text += generate_latest(registry)
    return text
