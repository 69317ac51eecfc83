"""OpenTelemetry traces: the real app, in process, exporting to an in-memory exporter.

The SDK drives the app through an ASGI transport; every span the server makes is checked
against the tree a trace viewer would draw: request -> run -> nodes (-> subgraph nodes).
Last, real API and worker processes export over OTLP/HTTP to a collector run by the test.
"""

import asyncio
import http.server
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from garrison.app import create_app
from garrison.config.project import load_project
from garrison.config.settings import Settings
from garrison.observability import tracing
from tests.support.server import PROJECT
from tests.support.topology import deploy

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tracing.configure_tracing(service_name="garrison-test", exporter=memory)
    yield memory
    tracing.shutdown_tracing()


@pytest.fixture
async def sdk(exporter: InMemorySpanExporter, tmp_path: Path) -> AsyncIterator[LangGraphClient]:
    project = load_project(PROJECT)
    settings = Settings.load(
        project.settings_values(),
        {"storage": {"data_dir": tmp_path}, "observability": {"otel_enabled": True}},
    )
    app = create_app(settings, project)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://garrison", timeout=30.0
        ) as raw:
            yield LangGraphClient(raw)


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_a_request_its_run_and_their_nodes_form_one_trace(
    sdk: LangGraphClient, exporter: InMemorySpanExporter
) -> None:
    thread = await sdk.threads.create()
    exporter.clear()
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    result = await sdk.runs.wait(
        thread["thread_id"], "steps", input={}, headers={"traceparent": traceparent}
    )
    assert isinstance(result, dict) and result["done"] == ["one", "two", "three"]

    spans = list(exporter.get_finished_spans())
    request = _one(spans, "POST /threads/{thread_id}/runs/wait")
    run = _one(spans, "run steps")
    nodes = [_one(spans, f"node {name}") for name in ("one", "two", "three")]

    # The request continues the client's trace; everything else hangs below it.
    assert request.kind is SpanKind.SERVER
    assert request.context is not None and request.context.trace_id == int(CLIENT_TRACE, 16)
    assert _parent_id(request) == int(CLIENT_SPAN, 16)
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/threads/{thread_id}/runs/wait"
    assert request.attributes["http.response.status_code"] == 200
    assert _parent_id(run) == _span_id(request)
    assert run.attributes is not None
    assert run.attributes["langgraph.thread_id"] == thread["thread_id"]
    assert run.attributes["garrison.run.status"] == "success"
    for node in nodes:
        assert _parent_id(node) == _span_id(run)
        assert node.context is not None and node.context.trace_id == int(CLIENT_TRACE, 16)
    # Nodes run one after another, inside the run, inside the request.
    assert [n.start_time for n in nodes] == sorted(n.start_time or 0 for n in nodes)
    assert (request.start_time or 0) <= (run.start_time or 0)
    assert (run.end_time or 0) <= (request.end_time or 0)


async def test_subgraph_nodes_nest_under_their_node_and_failures_are_marked(
    sdk: LangGraphClient, exporter: InMemorySpanExporter
) -> None:
    thread = await sdk.threads.create()
    await sdk.runs.wait(thread["thread_id"], "nested", input={"topic": "t"})
    spans = list(exporter.get_finished_spans())
    run = _one(spans, "run nested")
    outer = _one(spans, "node inner")
    assert _parent_id(outer) == _span_id(run)
    assert _parent_id(_one(spans, "node inner_step")) == _span_id(outer)
    assert _parent_id(_one(spans, "node before")) == _span_id(run)

    exporter.clear()
    await sdk.runs.wait(thread["thread_id"], "failing", input={}, raise_error=False)
    spans = list(exporter.get_finished_spans())
    failed_run = _one(spans, "run failing")
    failed_node = _one(spans, "node second")
    assert failed_run.status.status_code is StatusCode.ERROR
    assert failed_node.status.status_code is StatusCode.ERROR
    assert _parent_id(failed_node) == _span_id(failed_run)
    assert _one(spans, "node first").status.status_code is not StatusCode.ERROR


async def test_background_runs_are_children_of_the_request_that_created_them(
    sdk: LangGraphClient, exporter: InMemorySpanExporter
) -> None:
    thread = await sdk.threads.create()
    run = await sdk.runs.create(thread["thread_id"], "echo", input={"messages": []})
    await sdk.runs.join(thread["thread_id"], run["run_id"])
    spans = list(exporter.get_finished_spans())
    create = _one(spans, "POST /threads/{thread_id}/runs")
    executed = _one(spans, "run echo")
    assert _parent_id(executed) == _span_id(create)
    # The request ended long before the run: a child span may outlive its parent.
    assert executed.attributes is not None
    assert executed.attributes["langgraph.run_id"] == run["run_id"]


# Over the wire: real processes export OTLP/HTTP to a collector the test runs ----------
@dataclass(frozen=True)
class _Exported:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class _Collector(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.spans: list[_Exported] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CollectorHandler(http.server.BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.server.spans.append(
                        _Exported(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                        )
                    )
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.e2e
async def test_split_processes_export_one_trace_over_otlp(
    collector: _Collector, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "GARRISON_OTEL_SERVICE_NAME": "garrison-e2e",
    }
    with deploy("split", tmp_path, env=env) as deployment:
        sdk = get_client(url=deployment.url, api_key=None)
        thread = await sdk.threads.create()
        traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        await sdk.runs.wait(
            thread["thread_id"], "steps", input={}, headers={"traceparent": traceparent}
        )
        await sdk.http.client.aclose()
        deadline = time.monotonic() + 15
        names = {"POST /threads/{thread_id}/runs/wait", "run steps", "node three"}
        while not names <= {s.name for s in collector.spans if s.trace_id == CLIENT_TRACE}:
            assert time.monotonic() < deadline, collector.spans
            await asyncio.sleep(0.1)

    spans = {s.name: s for s in collector.spans if s.trace_id == CLIENT_TRACE}
    request, run = spans["POST /threads/{thread_id}/runs/wait"], spans["run steps"]
    assert request.parent_id == CLIENT_SPAN and request.service == "garrison-e2e"
    assert run.parent_id == request.span_id  # continued in a worker process, from the row
    for node in ("one", "two", "three"):
        assert spans[f"node {node}"].parent_id == run.span_id
