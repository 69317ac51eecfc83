"""Typed, grouped settings.

Each subsystem has its own class and environment prefix (`GARRISON_WORKER_CONCURRENCY`,
`GARRISON_STREAM_RETENTION_SECONDS`...). Values come from, highest first: explicit overrides
(CLI flags), the environment, the project file (`garrison.json` keys of the same names), and
the defaults below.
"""

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from garrison.config.security_settings import (
    AuditSettings,
    AuthSettings,
    EncryptionSettings,
    LimitSettings,
)
from garrison.config.settings_base import G, Group


class ServerSettings(Group):
    model_config = SettingsConfigDict(env_prefix="GARRISON_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    cors_allow_origins: list[str] = ["*"]
    # Addresses of reverse proxies whose X-Forwarded-* headers are believed; none by default.
    trusted_proxies: list[str] = []
    production: bool = False
    log_level: str = "info"
    # Idle keep-alive connections are closed after this long. It must outlast the idle
    # timeout of clients and load balancers (httpx: 5 s, cloud balancers: 60 s): when the
    # server closes first, a request sent at that moment fails with "Server disconnected".
    keep_alive_seconds: int = Field(default=75, ge=1)


class StorageSettings(Group):
    model_config = SettingsConfigDict(env_prefix="GARRISON_", extra="ignore", frozen=True)

    data_dir: Path = Path(".garrison")
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "garrison.sqlite"


class DatabaseSettings(Group):
    """PostgreSQL. Without a URL, Garrison runs embedded on SQLite (see StorageSettings)."""

    model_config = SettingsConfigDict(
        env_prefix="GARRISON_DATABASE_", extra="ignore", frozen=True, populate_by_name=True
    )

    url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GARRISON_DATABASE_URL", "DATABASE_URL", "url"),
    )
    # Migrate at start-up (safe concurrently: advisory lock). Turn off where a migration
    # job owns schema changes (Kubernetes pre-install/pre-upgrade hook).
    auto_migrate: bool = True
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=20, ge=1)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long a starting process waits for PostgreSQL (pods often start while the database
    # is still starting or restarting) before it gives up with a clear error.
    startup_wait_seconds: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("database pool_min_size must not exceed pool_max_size")
        return self


class RedisSettings(Group):
    """Redis for wake-ups, cancel signals and event streams; optional even with PostgreSQL."""

    model_config = SettingsConfigDict(
        env_prefix="GARRISON_REDIS_", extra="ignore", frozen=True, populate_by_name=True
    )

    url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GARRISON_REDIS_URL", "REDIS_URL", "url")
    )
    # Several deployments can share one Redis, each under its own prefix.
    key_prefix: str = Field(default="garrison", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    # Calls wait for a free connection beyond this; open streams hold none.
    max_connections: int = Field(default=32, ge=2, le=10_000)


class WorkerSettings(Group):
    model_config = SettingsConfigDict(env_prefix="GARRISON_WORKER_", extra="ignore", frozen=True)

    enabled: bool = True
    concurrency: int = Field(default=16, ge=1, le=10_000)
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    reaper_seconds: float = Field(default=15.0, gt=0)
    poll_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    run_timeout_seconds: float = Field(default=86_400.0, gt=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    max_recursion_limit: int = Field(default=10_000, ge=1)
    # The small HTTP endpoint of `garrison worker` (liveness, readiness, metrics).
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8080, ge=0, le=65535)

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Self:
        # A lease must survive one missed heartbeat, or a busy event loop loses runs.
        if self.lease_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError("worker lease_seconds must be more than 2 x heartbeat_seconds")
        return self


class StreamSettings(Group):
    model_config = SettingsConfigDict(env_prefix="GARRISON_STREAM_", extra="ignore", frozen=True)

    retention_seconds: float = Field(default=600.0, ge=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    max_events_per_run: int = Field(default=100_000, ge=10)


class WebhookSettings(Group):
    model_config = SettingsConfigDict(env_prefix="GARRISON_WEBHOOK_", extra="ignore", frozen=True)

    enabled: bool = True
    allow_loopback: bool = False
    allow_private: bool = False
    require_https: bool = False
    allowed_domains: list[str] = []
    allowed_ports: list[int] = []
    max_url_length: int = 4096
    timeout_seconds: float = Field(default=10.0, gt=0)


class CronSettings(Group):
    model_config = SettingsConfigDict(env_prefix="GARRISON_CRON_", extra="ignore", frozen=True)

    enabled: bool = True
    tick_seconds: float = Field(default=5.0, gt=0)


class ObservabilitySettings(Group):
    """Logs, metrics and traces. Tracing is off unless enabled here or an OTLP endpoint is
    set in the standard `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` variables."""

    model_config = SettingsConfigDict(env_prefix="GARRISON_", extra="ignore", frozen=True)

    # `json`: one object per line (production); `text`: readable lines (development).
    log_format: Literal["json", "text"] = "text"
    # None: on when an OTLP endpoint is configured; True/False force it.
    otel_enabled: bool | None = None
    otel_service_name: str = "garrison"
    # Queue depth and age are read from storage at scrape time, at most this often.
    metrics_cache_seconds: float = Field(default=2.0, ge=0)
    # How often each process samples its connection pools for the pool gauges.
    metrics_sample_seconds: float = Field(default=5.0, gt=0)


class Settings:
    """All settings groups, resolved once at start-up."""

    def __init__(
        self,
        *,
        server: ServerSettings,
        storage: StorageSettings,
        database: DatabaseSettings,
        redis: RedisSettings,
        worker: WorkerSettings,
        streams: StreamSettings,
        webhooks: WebhookSettings,
        crons: CronSettings,
        observability: ObservabilitySettings | None = None,
        auth: AuthSettings | None = None,
        encryption: EncryptionSettings | None = None,
        audit: AuditSettings | None = None,
        limits: LimitSettings | None = None,
    ) -> None:
        self.server = server
        self.storage = storage
        self.database = database
        self.redis = redis
        self.worker = worker
        self.streams = streams
        self.webhooks = webhooks
        self.crons = crons
        self.observability = observability or ObservabilitySettings()
        self.auth = auth or AuthSettings()
        self.encryption = encryption or EncryptionSettings()
        self.audit = audit or AuditSettings()
        self.limits = limits or LimitSettings()

    @classmethod
    def load(
        cls,
        file_values: dict[str, Any] | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> "Settings":
        """Resolve every group. `file_values` maps group name to its garrison.json object."""
        file_values = file_values or {}
        overrides = overrides or {}

        def group(name: str, kind: type[G]) -> G:
            return kind.from_sources(file_values.get(name) or {}, overrides.get(name) or {})

        return cls(
            server=group("server", ServerSettings),
            storage=group("storage", StorageSettings),
            database=group("database", DatabaseSettings),
            redis=group("redis", RedisSettings),
            worker=group("worker", WorkerSettings),
            streams=group("streams", StreamSettings),
            webhooks=group("webhooks", WebhookSettings),
            crons=group("crons", CronSettings),
            observability=group("observability", ObservabilitySettings),
            auth=group("auth", AuthSettings),
            encryption=group("encryption", EncryptionSettings),
            audit=group("audit", AuditSettings),
            limits=group("limits", LimitSettings),
        )
