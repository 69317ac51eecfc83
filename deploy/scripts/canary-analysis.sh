#!/usr/bin/env bash
# Canary analysis with automatic rollback.
#
# Queries Prometheus for the API's 5xx ratio and p95 latency over a window, CHECKS times
# INTERVAL seconds apart. When a threshold is breached it rolls back: `kubectl argo rollouts
# abort` for an Argo Rollout (--rollout), otherwise `kubectl rollout undo` of the Deployment.
# No traffic in the window (empty or NaN result) counts as healthy.
#
# Exit codes: 0 healthy, 2 breached and rolled back, 1 usage or query error (no rollback).
set -euo pipefail

PROMETHEUS_URL=${PROMETHEUS_URL:-http://prometheus-operated.monitoring.svc:9090}
NAMESPACE=${NAMESPACE:-garrison}
JOB=${JOB:-garrison-api}
DEPLOYMENT=${DEPLOYMENT:-garrison-api}
ROLLOUT=${ROLLOUT:-}
WINDOW=${WINDOW:-5m}
MAX_ERROR_RATIO=${MAX_ERROR_RATIO:-0.05}
MAX_P95_SECONDS=${MAX_P95_SECONDS:-2}
CHECKS=${CHECKS:-5}
INTERVAL=${INTERVAL:-60}

usage() {
  echo "usage: $0 [--prometheus URL] [--namespace NS] [--job JOB] [--deployment NAME | --rollout NAME]" >&2
  echo "          [--window 5m] [--max-error-ratio 0.05] [--max-p95 2] [--checks 5] [--interval 60]" >&2
  exit 1
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --prometheus) PROMETHEUS_URL=$2; shift 2 ;;
    --namespace) NAMESPACE=$2; shift 2 ;;
    --job) JOB=$2; shift 2 ;;
    --deployment) DEPLOYMENT=$2; shift 2 ;;
    --rollout) ROLLOUT=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --max-error-ratio) MAX_ERROR_RATIO=$2; shift 2 ;;
    --max-p95) MAX_P95_SECONDS=$2; shift 2 ;;
    --checks) CHECKS=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    *) usage ;;
  esac
done

selector="job=\"${JOB}\",namespace=\"${NAMESPACE}\""
error_query="sum(rate(http_requests_total{${selector},status=~\"5..\"}[${WINDOW}])) / sum(rate(http_requests_total{${selector}}[${WINDOW}]))"
p95_query="histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{${selector}}[${WINDOW}])))"

# Prints the first sample's value, or "NaN" when the result is empty.
query() {
  local body
  body=$(curl --silent --show-error --fail --max-time 10 \
    --data-urlencode "query=$1" "${PROMETHEUS_URL%/}/api/v1/query") || return 1
  jq -er 'if .status != "success" then error("query failed") else (.data.result[0].value[1] // "NaN") end' <<<"$body"
}

# True when VALUE is a number above LIMIT (NaN and +Inf-free empty results are not breaches).
above() {
  awk -v v="$1" -v limit="$2" 'BEGIN { exit !(v != "NaN" && v + 0 > limit + 0) }'
}

rollback() {
  echo "canary: $1; rolling back" >&2
  if [[ -n "$ROLLOUT" ]]; then
    kubectl argo rollouts abort "$ROLLOUT" --namespace "$NAMESPACE"
  else
    kubectl rollout undo "deployment/${DEPLOYMENT}" --namespace "$NAMESPACE"
  fi
  exit 2
}

for ((check = 1; check <= CHECKS; check++)); do
  error_ratio=$(query "$error_query") || { echo "canary: Prometheus query failed" >&2; exit 1; }
  p95=$(query "$p95_query") || { echo "canary: Prometheus query failed" >&2; exit 1; }
  echo "canary: check ${check}/${CHECKS}: error_ratio=${error_ratio} p95=${p95}s"
  if above "$error_ratio" "$MAX_ERROR_RATIO"; then
    rollback "error ratio ${error_ratio} > ${MAX_ERROR_RATIO}"
  fi
  if above "$p95" "$MAX_P95_SECONDS"; then
    rollback "p95 latency ${p95}s > ${MAX_P95_SECONDS}s"
  fi
  if ((check < CHECKS)); then
    sleep "$INTERVAL"
  fi
done
echo "canary: healthy"
