"""A server span per HTTP request (pure ASGI middleware, installed only when tracing is on).

An incoming W3C `traceparent` header makes the request part of the caller's trace. The span
is named after the route template once routing has matched (`POST /threads/{thread_id}/runs`).
Probes and `/metrics` are not traced.
"""

from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from garrison.observability import tracing
from garrison.observability.http_metrics import route_template
from garrison.observability.logs import PROBE_PATHS

_PROPAGATED = (b"traceparent", b"tracestate")


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)  # probes every few seconds: not worth a trace
            return
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope["headers"]
            if key in _PROPAGATED
        }
        method = scope["method"]
        with tracing.tracer().start_as_current_span(
            method,
            context=tracing.context_from(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "garrison.request_id": scope.get("state", {}).get("request_id", ""),
            },
        ) as span:

            async def send_and_record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)
                await send(message)

            try:
                await self.app(scope, receive, send_and_record)
            finally:
                route = route_template(scope)
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
