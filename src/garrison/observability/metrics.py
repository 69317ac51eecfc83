"""Prometheus metrics of the server and the worker, in the default registry.

The names are a contract: dashboards, alert rules and autoscaling rules under
`deploy/monitoring/` use them verbatim. Queue depth and age, and the storage and broker
`up` gauges, are not here: they are read at scrape time (see `observability.probes`).

Under `garrison serve --workers N` every process writes its samples to files in
`PROMETHEUS_MULTIPROC_DIR` and a scrape merges them (see `observability.exposition`).
Each gauge says how processes combine: `livesum` for quantities that add up across the
processes alive now (runs in progress, open streams, slots, pooled connections), so a dead
process stops counting at once.
"""

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ACTIVE_SESSIONS",
    "ACTIVE_WORKFLOWS",
    "DB_POOL_CONNECTIONS",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "LEASE_EXPIRATIONS",
    "REAPER_RECOVERIES",
    "REDIS_POOL_CONNECTIONS",
    "WORKER_SLOTS",
    "WORKER_SLOTS_BUSY",
    "WORKFLOW_DURATION",
    "WORKFLOW_EXECUTIONS",
]

# Requests are milliseconds; streams (`/runs/stream`, `/join`) last as long as their run.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its response body (streams included).",
    ["route", "method"],
    buckets=_HTTP_BUCKETS,
)

WORKFLOW_EXECUTIONS = Counter(
    "langgraph_workflow_executions",
    "Run attempts that ended, by graph and final status "
    "(success, error, timeout, interrupted; rollbacks count as interrupted).",
    ["workflow_type", "status"],
)
WORKFLOW_DURATION = Histogram(
    "langgraph_workflow_duration_seconds",
    "Execution time of run attempts that ended, by graph.",
    ["workflow_type"],
    buckets=_RUN_BUCKETS,
)
ACTIVE_WORKFLOWS = Gauge(
    "langgraph_active_workflows",
    "Runs executing now, by graph.",
    ["workflow_type"],
    multiprocess_mode="livesum",
)
ACTIVE_SESSIONS = Gauge(
    "langgraph_active_sessions",
    "Server-sent event streams open now.",
    multiprocess_mode="livesum",
)

WORKER_SLOTS = Gauge(
    "garrison_worker_slots",
    "Runs the workers of this process may execute at once (their concurrency).",
    multiprocess_mode="livesum",
)
WORKER_SLOTS_BUSY = Gauge(
    "garrison_worker_slots_busy",
    "Worker slots executing a run now.",
    multiprocess_mode="livesum",
)
LEASE_EXPIRATIONS = Counter(
    "garrison_lease_expirations",
    "Runs the reaper found with an expired lease (their worker was lost).",
)
REAPER_RECOVERIES = Counter(
    "garrison_reaper_recoveries",
    "Runs with an expired lease the reaper returned to the queue to resume.",
)

DB_POOL_CONNECTIONS = Gauge(
    "garrison_db_pool_connections",
    "PostgreSQL pool connections: in_use, idle, and the configured max.",
    ["state"],
    multiprocess_mode="livesum",
)
REDIS_POOL_CONNECTIONS = Gauge(
    "garrison_redis_pool_connections",
    "Redis pool connections: in_use, and the configured max.",
    ["state"],
    multiprocess_mode="livesum",
)
