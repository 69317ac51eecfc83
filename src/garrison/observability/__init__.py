"""Metrics, structured logs and traces, importable from every layer (it imports none).

Modules: `metrics` (the Prometheus metrics), `http_metrics` (their HTTP middleware),
`probes` (queue, health and pool readings), `exposition` (what a scrape returns, across
processes), `endpoint` (a process's `/metrics`), `logs` (JSON logs and their context),
`tracing`, `tracing_http`, `tracing_nodes` (OpenTelemetry; the last two import the SDK and
are loaded only when tracing is on).
"""
