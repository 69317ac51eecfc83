"""The deployments the benchmark measures (embedded, postgres, split): they live in
`garrison.planning.topology`, which `garrison bench profile` shares; re-exported here so the
benchmark's modules keep importing them from one place."""

from garrison.planning.topology import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    TOPOLOGIES,
    Deployment,
    deploy,
    fresh_database,
    fresh_redis_prefix,
    redis_server_pid,
    service_versions,
)

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "DEFAULT_REDIS_URL",
    "TOPOLOGIES",
    "Deployment",
    "deploy",
    "fresh_database",
    "fresh_redis_prefix",
    "redis_server_pid",
    "service_versions",
]
