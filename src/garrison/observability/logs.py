"""Logging: JSON lines (or text for development), with the ids of the request or run at hand.

`GARRISON_LOG_FORMAT=json` writes one object per line: `time` (UTC, ISO 8601), `level`,
`logger`, `message`, then `request_id`, `run_id`, `thread_id` and `tenant` when known, and
`method`, `path`, `status`, `client` on access lines. The ids come from context variables:
the request middleware binds the request's, the worker binds each run's. Uvicorn's loggers
go through the same handler; its access lines skip the probes (`/ok`, `/health`, `/ready`,
`/metrics`), which would otherwise drown everything else.
"""

import logging
import logging.config
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

__all__ = [
    "PROBE_PATHS",
    "JsonFormatter",
    "LogFormat",
    "OneLineFilter",
    "ProbeAccessFilter",
    "bind_request",
    "bind_run",
    "configure_logging",
    "log_config",
]

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROBE_PATHS = frozenset({"/ok", "/health", "/ready", "/metrics"})

request_id: ContextVar[str | None] = ContextVar("garrison_log_request_id", default=None)
run_id: ContextVar[str | None] = ContextVar("garrison_log_run_id", default=None)
thread_id: ContextVar[str | None] = ContextVar("garrison_log_thread_id", default=None)
tenant: ContextVar[str | None] = ContextVar("garrison_log_tenant", default=None)
_FIELDS = (("request_id", request_id), ("run_id", run_id), ("thread_id", thread_id))

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_THREAD_IN_PATH = re.compile(rf"/threads/({_UUID})")
_RUN_IN_PATH = re.compile(rf"/runs/({_UUID})")


@contextmanager
def bind_request(request: str, path: str) -> Iterator[None]:
    """Bind a request's id, and the thread and run ids its path names, for its duration."""
    thread = _THREAD_IN_PATH.search(path)
    run = _RUN_IN_PATH.search(path)
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = [
        (request_id, request_id.set(request))
    ]
    if thread is not None:
        tokens.append((thread_id, thread_id.set(thread.group(1))))
    if run is not None:
        tokens.append((run_id, run_id.set(run.group(1))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind_run(run: str, thread: str, tenant_id: str) -> None:
    """Bind a run's ids to the current task (the worker's task for that run, and the tasks
    it starts); they stay until the task ends."""
    run_id.set(run)
    thread_id.set(thread)
    tenant.set(tenant_id)


# Attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message", "taskName"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _FIELDS:
            value = var.get()
            if value is not None:
                line[name] = value
        bound_tenant = tenant.get()
        if bound_tenant is not None:
            line["tenant"] = bound_tenant
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            line.update(_access_fields(record.args))
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def _access_fields(args: tuple[Any, ...]) -> dict[str, Any]:
    # uvicorn's access record: (client address, method, path with query, HTTP version, status)
    if len(args) != 5:
        return {}
    client, method, path, _, status = args
    return {"method": method, "path": path, "status": status, "client": client}


class ProbeAccessFilter(logging.Filter):
    """Drops uvicorn access lines of the probes and of `/metrics`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            return args[2].split("?", 1)[0] not in PROBE_PATHS
        return True


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r"}.get(char, f"\\x{ord(char):02x}")


class OneLineFilter(logging.Filter):
    """Text logs: a record is one line whatever its message says. CR, LF and other control
    characters (from user input in a path or an error) are escaped, so they cannot forge a
    line; traceback lines are indented, so none can pass for a record of its own. (JSON
    lines escape them already.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _CONTROL.sub(_escape_control, record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = record.exc_text.replace("\r", "\\r").replace("\n", "\n    ")
            record.exc_info = None
        return True


def log_config(
    log_format: LogFormat, level: str, redact_patterns: Sequence[str] = ()
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the root and uvicorn's loggers. Plain data, so
    uvicorn can hand it to the processes of `--workers N`, which apply it again.

    Every line goes through PII redaction (`security.redaction`, plus `redact_patterns`,
    i.e. `settings.audit.redact_patterns`) before it is formatted."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler_filters = ["redact"] if log_format == "json" else ["redact", "one_line"]
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"garrison": formatter},
        "filters": {
            "probes": {"()": f"{__name__}.ProbeAccessFilter"},
            "redact": {
                "()": "garrison.security.redaction.RedactionFilter",
                "patterns": list(redact_patterns),
            },
            "one_line": {"()": f"{__name__}.OneLineFilter"},
        },
        "handlers": {
            "garrison": {
                "class": "logging.StreamHandler",
                "formatter": "garrison",
                "stream": "ext://sys.stderr",
                "filters": handler_filters,
            }
        },
        "root": {"handlers": ["garrison"], "level": upper},
        "loggers": {
            # Everything reaches the root's one handler, in one format.
            "uvicorn": {"handlers": [], "level": upper, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": upper, "propagate": True},
            "uvicorn.access": {
                "handlers": [],
                "level": "INFO",
                "propagate": True,
                "filters": ["probes"],
            },
        },
    }


def configure_logging(
    log_format: LogFormat, level: str, redact_patterns: Sequence[str] = ()
) -> None:
    logging.config.dictConfig(log_config(log_format, level, redact_patterns))
