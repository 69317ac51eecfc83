"""`garrison` command line."""

import asyncio
import contextlib
import logging
import logging.config
import os
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from garrison import __version__
from garrison.auth.cli import keys_app
from garrison.auth.setup import check_auth_settings
from garrison.bootstrap import check_topology, is_embedded, migrate_storage
from garrison.config.project import (
    ProjectConfig,
    bundled_examples_file,
    find_project_file,
    load_project,
)
from garrison.config.settings import Settings
from garrison.domain.errors import GarrisonError, InvalidArgumentError
from garrison.observability import exposition, logs
from garrison.planning.cli import bench_app, plan_app
from garrison.security.at_rest import AtRestEncryption
from garrison.security.audit_cli import audit_app
from garrison.security.rotation_cli import rotate_data
from garrison.storage.sqlite.lock import DataDirLock

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Run LangGraph agents.")
app.add_typer(plan_app, name="plan")
keys_app.command("rotate-data")(rotate_data)
app.add_typer(keys_app, name="keys")
app.add_typer(bench_app, name="bench")
app.add_typer(audit_app, name="audit")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="langgraph.json or garrison.json (default: ./garrison.json, ./langgraph.json, "
        "else the bundled examples)",
    ),
]
LogLevelOption = Annotated[str | None, typer.Option(help="debug, info, warning, error")]

# How `serve --workers N` hands the command line to its child processes: as the settings'
# own environment variables, which every process reads the same way.
_OVERRIDE_ENV = {
    ("server", "host"): "GARRISON_HOST",
    ("server", "port"): "GARRISON_PORT",
    ("server", "log_level"): "GARRISON_LOG_LEVEL",
    ("storage", "data_dir"): "GARRISON_DATA_DIR",
    ("worker", "enabled"): "GARRISON_WORKER_ENABLED",
}
CONFIG_ENV = "GARRISON_CONFIG"


def project_path(config: Path | None) -> Path:
    """`--config`, else GARRISON_CONFIG, else ./garrison.json, ./langgraph.json, else the
    bundled examples."""
    if config is not None:
        return config
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return find_project_file(Path.cwd()) or bundled_examples_file()


def _fail(exc: GarrisonError) -> None:
    typer.secho(f"error: {exc.detail}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _load(
    config: Path | None, overrides: dict[str, dict[str, Any]]
) -> tuple[Path, ProjectConfig, Settings]:
    path = project_path(config)
    project = load_project(path)
    return path, project, Settings.load(project.settings_values(), overrides)


def _log_config(settings: Settings) -> dict[str, Any]:
    return logs.log_config(
        settings.observability.log_format, settings.server.log_level, settings.audit.redact_patterns
    )


def _configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(_log_config(settings))


class _GracefulServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # uvicorn re-raises SIGTERM/SIGINT after shutting down; a shutdown that drained
            # cleanly should exit 0, as Kubernetes and systemd expect of a drained worker.
            self._captured_signals.clear()


def _import_graphs(project: ProjectConfig) -> None:
    from garrison.llm import configure_profiles
    from garrison.runtime.graphs import GraphRegistry

    project.apply_environment()
    configure_profiles(project.llm)
    GraphRegistry(project, checkpointer=None, store=None).load()  # type: ignore[arg-type]


def _preflight(project: ProjectConfig, settings: Settings) -> None:
    """Catch the usual start-up problems with a one-line error instead of a traceback:
    graphs that fail to import, and a data directory another server holds. The app
    repeats both for real (imports are cached; the lock is taken again)."""
    check_auth_settings(settings, project)
    AtRestEncryption.from_settings(settings.encryption, production=settings.server.production)
    _import_graphs(project)
    if is_embedded(settings):
        with DataDirLock(settings.storage.data_dir):
            pass


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind [GARRISON_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [GARRISON_PORT]")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Embedded state directory [GARRISON_DATA_DIR]")
    ] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Serve HTTP only; runs execute elsewhere")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="HTTP processes (more than 1 needs PostgreSQL)")
    ] = 1,
    log_level: LogLevelOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = True,
) -> None:
    """Serve the LangGraph Server API for a project."""
    overrides: dict[str, dict[str, Any]] = {
        "server": {"host": host, "port": port, "log_level": log_level},
        "storage": {"data_dir": data_dir},
        "worker": {"enabled": False} if no_worker else {},
    }
    try:
        path, project, settings = _load(config, overrides)
        check_topology(settings, http_workers=workers, run_worker=not no_worker)
        _preflight(project, settings)
    except GarrisonError as exc:
        _fail(exc)
        return
    _configure_logging(settings)
    options: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "loop": "uvloop" if sys.platform != "win32" else "asyncio",
        "http": "httptools",
        "log_level": settings.server.log_level.lower(),
        "log_config": _log_config(settings),  # uvicorn's own loggers too, in every process
        "access_log": access_log,
        "proxy_headers": bool(settings.server.trusted_proxies),
        "forwarded_allow_ips": settings.server.trusted_proxies or None,
        # Open streams must not hold a restart hostage; clients reconnect with
        # Last-Event-ID, and the worker drains runs after HTTP has stopped.
        "timeout_graceful_shutdown": 3,
        "timeout_keep_alive": settings.server.keep_alive_seconds,
    }
    if workers > 1:
        _export_overrides(path, overrides)
        # Each process writes its metrics to files there; a scrape of any of them merges all.
        metrics_dir = exposition.prepare_multiprocess_dir()
        try:
            uvicorn.run(
                "garrison.app:app_from_environment", factory=True, workers=workers, **options
            )
        finally:
            exposition.remove_multiprocess_dir(metrics_dir)
        return
    from garrison.app import create_app

    server = _GracefulServer(uvicorn.Config(create_app(settings, project), **options))
    server.run()
    if not server.started:
        raise typer.Exit(1)


def _export_overrides(path: Path, overrides: dict[str, dict[str, Any]]) -> None:
    os.environ[CONFIG_ENV] = str(path.resolve())
    for (group, name), variable in _OVERRIDE_ENV.items():
        value = overrides.get(group, {}).get(name)
        if value is not None:
            os.environ[variable] = str(value).lower() if isinstance(value, bool) else str(value)


@app.command()
def worker(
    config: ConfigOption = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Runs at once [GARRISON_WORKER_CONCURRENCY]")
    ] = None,
    health_port: Annotated[
        int | None, typer.Option(help="Probe/metrics port [GARRISON_WORKER_HEALTH_PORT]")
    ] = None,
    log_level: LogLevelOption = None,
) -> None:
    """Execute runs from the shared database (no public API). Needs PostgreSQL."""
    from garrison.worker_process import run_worker_process

    overrides: dict[str, dict[str, Any]] = {
        "server": {"log_level": log_level},
        "worker": {"concurrency": concurrency, "health_port": health_port},
    }
    try:
        _, project, settings = _load(config, overrides)
        if is_embedded(settings):
            raise InvalidArgumentError(
                "`garrison worker` needs PostgreSQL (DATABASE_URL); embedded mode runs its "
                "worker inside `garrison serve`"
            )
        _import_graphs(project)
    except GarrisonError as exc:
        _fail(exc)
        return
    _configure_logging(settings)
    try:
        _run_event_loop(run_worker_process(settings, project))
    except GarrisonError as exc:  # e.g. the database stayed unreachable at start-up
        _fail(exc)


def _run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop, as `garrison serve` does: a worker spends much of its time in socket
    I/O to PostgreSQL and Redis, which uvloop does in C."""
    if sys.platform == "win32":
        asyncio.run(main)
        return
    import uvloop

    uvloop.run(main)


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema (idempotent; safe to run concurrently)."""
    try:
        _, project, settings = _load(config, {})
        project.apply_environment()  # the store's embedding model may come from the project
        version = asyncio.run(migrate_storage(settings, project))
    except GarrisonError as exc:
        _fail(exc)
        return
    where = "the embedded database" if is_embedded(settings) else "PostgreSQL"
    typer.echo(f"{where} is at schema version {version}")


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate a project file and import its graphs."""
    try:
        project = load_project(project_path(config))
        _import_graphs(project)
    except GarrisonError as exc:
        _fail(exc)
        return
    typer.echo(f"{project.source}: graphs {', '.join(project.graphs)} load fine")


@app.command()
def version() -> None:
    """Print Garrison's version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
