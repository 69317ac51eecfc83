"""`garrison worker`: a process that only executes runs (no public API).

It claims runs from the shared database, runs them, and serves a small HTTP endpoint for
probes and metrics. SIGTERM stops claiming at once, lets running runs reach a superstep
boundary within the grace period, hands the rest back without charging an attempt, then
exits 0 without waiting for the nodes of the runs it handed back.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import NoReturn

import uvicorn

from garrison.api.health import health_app
from garrison.bootstrap import open_runtime
from garrison.config.project import ProjectConfig
from garrison.config.settings import Settings
from garrison.domain.errors import UnavailableError
from garrison.llm import configure_profiles
from garrison.observability import tracing
from garrison.observability.endpoint import MetricsEndpoint
from garrison.runtime.worker import Worker

logger = logging.getLogger("garrison.worker")


class _ProbeServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker process owns SIGTERM (it drains runs); the probes stop when told to.
        yield


async def run_worker_process(settings: Settings, project: ProjectConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        project.apply_environment()
        configure_profiles(project.llm)  # before graphs import their chat models
        runtime = await open_runtime(settings, project, stack)
        observability = settings.observability
        if tracing.wanted(observability.otel_enabled) and not tracing.enabled():
            tracing.configure_tracing(service_name=observability.otel_service_name)
            stack.callback(tracing.shutdown_tracing)
        metrics = MetricsEndpoint(
            storage=runtime.storage,
            broker=runtime.broker,
            cache_seconds=observability.metrics_cache_seconds,
            sample_seconds=observability.metrics_sample_seconds,
        )
        await metrics.start()
        stack.push_async_callback(metrics.stop)
        worker = Worker(
            storage=runtime.storage,
            broker=runtime.broker,
            executor=runtime.executor(settings),
            settings=settings.worker,
            hooks=[runtime.webhook_sender(settings, stack)],
        )

        async def ready() -> bool:
            try:
                await runtime.storage.ping()
            except (UnavailableError, OSError):
                return False
            return True

        probes = _ProbeServer(
            uvicorn.Config(
                health_app(ready, metrics.render),
                host=settings.worker.health_host,
                port=settings.worker.health_port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                log_config=None,  # keep the process's logging (JSON or text) as configured
            )
        )
        probes_task = asyncio.create_task(probes.serve(), name="worker-probes")
        await worker.start()
        logger.info(
            "worker %s running graphs %s (concurrency %d, probes on :%d)",
            worker.worker_id,
            ", ".join(runtime.registry.graph_ids),
            settings.worker.concurrency,
            settings.worker.health_port,
        )
        await stop.wait()
        logger.info("draining (grace %s s)", settings.worker.shutdown_grace_seconds)
        cut_off = await worker.stop()
        probes.should_exit = True
        await probes_task
    if cut_off:
        _exit_leaving_node_threads(cut_off)


def _exit_leaving_node_threads(cut_off: int) -> NoReturn:
    # The cut-off runs are back in the queue, but their synchronous nodes may still run in
    # threads that nothing can interrupt. A normal exit joins those threads, which would
    # keep the process (and its side effects) alive for as long as the slowest node, past
    # any termination grace period. Everything this process owns is closed: leave now.
    logger.warning("exiting without waiting for the nodes of %d handed-back run(s)", cut_off)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
