"""Adapters chosen from settings, and the runtime every Garrison process builds on them.

Embedded (no database URL): SQLite in the data directory, the in-process broker, and one
process only (a lock on the data directory). Scale-out: PostgreSQL, and Redis when its URL
is set (without it, wake-ups fall back to polling and events do not cross processes).
"""

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from garrison.broker.memory import MemoryBroker
from garrison.broker.ports import Broker
from garrison.config.project import ProjectConfig
from garrison.config.settings import Settings
from garrison.domain.errors import InvalidArgumentError, UnavailableError
from garrison.runtime.embeddings import resolve_embeddings
from garrison.runtime.executor import RunExecutor
from garrison.runtime.graphs import GraphRegistry
from garrison.runtime.scoped_store import TenantScopedStore
from garrison.security.at_rest import AtRestEncryption
from garrison.services.webhooks import WebhookPolicy, WebhookSender
from garrison.storage.ports import Storage
from garrison.storage.sqlite import SqliteStorage
from garrison.storage.sqlite.lock import DataDirLock

logger = logging.getLogger("garrison")

T = TypeVar("T")


def is_embedded(settings: Settings) -> bool:
    return settings.database.url is None


def check_topology(settings: Settings, *, http_workers: int, run_worker: bool) -> None:
    """Refuse process layouts the embedded mode cannot support (one process owns SQLite)."""
    if not is_embedded(settings):
        if settings.redis.url is None and (http_workers > 1 or not run_worker):
            logger.warning(
                "no Redis: run events will not stream across processes and workers poll "
                "for work every %s s; set REDIS_URL for the split topology",
                settings.worker.poll_seconds,
            )
        return
    if http_workers > 1:
        raise InvalidArgumentError("--workers > 1 needs PostgreSQL: set DATABASE_URL")
    if not run_worker:
        raise InvalidArgumentError(
            "--no-worker needs PostgreSQL (DATABASE_URL): the embedded SQLite file is "
            "owned by one process"
        )


def store_options(project: ProjectConfig) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The project's `store` section as the store adapters take it."""
    store = project.store
    if store is None:
        return None, None
    index = None
    if store.index is not None:
        index = {
            "dims": store.index.dims,
            "embed": resolve_embeddings(store.index.embed, store.index.dims, project.root),
        }
        if store.index.fields:
            index["fields"] = store.index.fields
    ttl = None
    if store.ttl is not None:
        ttl = {
            key: value
            for key, value in store.ttl.model_dump().items()
            if key in ("default_ttl", "refresh_on_read", "sweep_interval_minutes")
            and value is not None
        }
    return index, ttl


async def migrate_storage(settings: Settings, project: ProjectConfig) -> int:
    """Bring the schema up to date; returns its version. Safe to run concurrently."""
    url = settings.database.url
    if url is None:
        with DataDirLock(settings.storage.data_dir):
            storage = await SqliteStorage.open(settings.storage.sqlite_path)
            try:
                return await storage.schema_version()
            finally:
                await storage.close()
    from garrison.storage.postgres.migrate import migrate

    store_index, _ = store_options(project)
    return await _once_database_is_up(
        settings,
        lambda: migrate(
            url.get_secret_value(),
            store_index=store_index,
            connect_timeout_seconds=settings.database.connect_timeout_seconds,
        ),
    )


async def _once_database_is_up(settings: Settings, start: Callable[[], Awaitable[T]]) -> T:
    """`start()`, retried with backoff while PostgreSQL is unreachable, for up to
    `database.startup_wait_seconds`; then its UnavailableError goes to the caller."""

    def waiting(state: RetryCallState) -> None:
        outcome = state.outcome.exception() if state.outcome else None
        logger.warning("waiting for the database: %s", outcome)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(UnavailableError),
        stop=stop_after_delay(settings.database.startup_wait_seconds),
        wait=wait_exponential(multiplier=0.25, max=5.0),
        before_sleep=waiting,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await start()
    raise AssertionError("tenacity either returns or re-raises")


async def open_storage(
    settings: Settings, project: ProjectConfig, stack: contextlib.AsyncExitStack
) -> Storage:
    store_index, store_ttl = store_options(project)
    # Refuses to start (KeyringError) on unsafe keys, or none where they are required.
    encryption = AtRestEncryption.from_settings(
        settings.encryption, production=settings.server.production
    )
    url = settings.database.url
    storage: Storage
    if url is None:
        stack.enter_context(DataDirLock(settings.storage.data_dir))
        storage = await SqliteStorage.open(
            settings.storage.sqlite_path,
            busy_timeout_ms=settings.storage.sqlite_busy_timeout_ms,
            store_index=store_index,
            store_ttl=store_ttl,
            encryption=encryption,
        )
    else:
        from garrison.storage.postgres import PostgresStorage

        if settings.database.auto_migrate:
            await migrate_storage(settings, project)
        storage = await _once_database_is_up(
            settings,
            lambda: PostgresStorage.open(
                url.get_secret_value(),
                pool_min_size=settings.database.pool_min_size,
                pool_max_size=settings.database.pool_max_size,
                connect_timeout_seconds=settings.database.connect_timeout_seconds,
                store_index=store_index,
                store_ttl=store_ttl,
                encryption=encryption,
            ),
        )
    stack.push_async_callback(storage.close)
    return storage


async def open_broker(settings: Settings, stack: contextlib.AsyncExitStack) -> Broker:
    broker: Broker
    if settings.redis.url is None:
        broker = MemoryBroker(
            retention_seconds=settings.streams.retention_seconds,
            max_events_per_run=settings.streams.max_events_per_run,
        )
    else:
        from garrison.broker.redis import RedisBroker

        # Events kept in Redis for replay are sealed like the database's rows.
        event_cipher = AtRestEncryption.from_settings(
            settings.encryption, production=settings.server.production
        ).event_cipher()
        broker = RedisBroker(
            settings.redis.url.get_secret_value(),
            key_prefix=settings.redis.key_prefix,
            retention_seconds=settings.streams.retention_seconds,
            max_events_per_run=settings.streams.max_events_per_run,
            connect_timeout_seconds=settings.redis.connect_timeout_seconds,
            max_connections=settings.redis.max_connections,
            cipher=event_cipher,
        )
    await broker.start()
    stack.push_async_callback(broker.close)
    return broker


@dataclass(slots=True)
class Runtime:
    """What both the API process and the worker process run on."""

    storage: Storage
    broker: Broker
    registry: GraphRegistry
    webhooks: WebhookPolicy

    def executor(self, settings: Settings) -> RunExecutor:
        return RunExecutor(
            self.registry, self.broker, run_timeout_seconds=settings.worker.run_timeout_seconds
        )

    def webhook_sender(self, settings: Settings, stack: contextlib.AsyncExitStack) -> WebhookSender:
        sender = WebhookSender(self.webhooks, timeout_seconds=settings.webhooks.timeout_seconds)
        stack.push_async_callback(sender.close)
        return sender


async def open_runtime(
    settings: Settings, project: ProjectConfig, stack: contextlib.AsyncExitStack
) -> Runtime:
    storage = await open_storage(settings, project, stack)
    broker = await open_broker(settings, stack)
    # Graphs see the store through the run's tenant (current_tenant, set by the executor).
    registry = GraphRegistry(
        project, checkpointer=storage.checkpointer, store=TenantScopedStore(storage.store)
    )
    registry.load()
    await storage.assistants.ensure_system(registry.system_assistants())
    return Runtime(
        storage=storage,
        broker=broker,
        registry=registry,
        webhooks=WebhookPolicy(settings.webhooks),
    )
