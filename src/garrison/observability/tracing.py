"""OpenTelemetry tracing: a span per HTTP request, per run attempt, per graph node.

Off by default. `GARRISON_OTEL_ENABLED=true`, or a standard OTLP endpoint variable
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), turns it on; the
exporter then reads the other standard `OTEL_EXPORTER_OTLP_*` variables (headers, timeout)
itself, and `OTEL_SDK_DISABLED=true` keeps it off. While off, nothing of the SDK is
imported, no middleware is installed, and the hot paths pay one boolean test.

A run's span is a child of the request that created it: the API stores the request span's
W3C `traceparent` in the run's `config.configurable` (`__traceparent__`), and the worker
that executes the run, in whatever process, continues the trace from it.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from garrison import __version__

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "TRACEPARENT_KEY",
    "configure_tracing",
    "current_traceparent",
    "enabled",
    "run_span",
    "shutdown_tracing",
    "tracer",
    "wanted",
]

TRACEPARENT_KEY = "__traceparent__"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_provider: "TracerProvider | None" = None
_tracer: "Tracer | None" = None


def enabled() -> bool:
    return _tracer is not None


def wanted(setting: bool | None) -> bool:
    """Whether to trace: the setting when given, else whether an OTLP endpoint is set."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if setting is not None:
        return setting
    return any(os.environ.get(name) for name in _ENDPOINT_VARIABLES)


def configure_tracing(
    *, service_name: str = "garrison", exporter: "SpanExporter | None" = None
) -> None:
    """Start tracing in this process: export over OTLP/HTTP in batches, or synchronously
    to `exporter` (tests hand in an in-memory one)."""
    global _provider, _tracer
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    shutdown_tracing()
    attributes = {"service.version": __version__}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # the standard variable wins
        attributes["service.name"] = service_name
    resource = Resource.create(attributes)
    provider = TracerProvider(resource=resource)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    # Not made the global provider: FastAPI's native telemetry would then add spans of its
    # own (a second server span per request, and one per dependency and endpoint call).
    _provider, _tracer = provider, provider.get_tracer("garrison", __version__)


def shutdown_tracing() -> None:
    """Flush and stop exporting (at process exit)."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _provider = _tracer = None


def tracer() -> "Tracer":
    if _tracer is None:
        raise RuntimeError("tracing is not configured")
    return _tracer


def current_traceparent() -> dict[str, str]:
    """The current span as W3C trace-context headers (`traceparent`, maybe `tracestate`)."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, str]) -> "Context":
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(dict(carrier))


@contextmanager
def run_span(
    *, run_id: str, thread_id: str, graph_id: str, attempt: int, configurable: Mapping[str, Any]
) -> Iterator["Span"]:
    """The span of one run attempt, current for its duration, child of the creating
    request's span when the run carries its traceparent."""
    from opentelemetry.trace import SpanKind

    stored = configurable.get(TRACEPARENT_KEY)
    parent = context_from({"traceparent": stored}) if isinstance(stored, str) else None
    with tracer().start_as_current_span(
        f"run {graph_id}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "langgraph.graph_id": graph_id,
            "langgraph.run_id": run_id,
            "langgraph.thread_id": thread_id,
            "garrison.run.attempt": attempt,
        },
    ) as span:
        yield span


def mark_failed(span: "Span", description: str) -> None:
    from opentelemetry.trace import StatusCode

    span.set_status(StatusCode.ERROR, description)
