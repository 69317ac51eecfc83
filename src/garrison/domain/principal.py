"""Who is calling: the tenant every query is scoped to, and the identity that owns rows."""

from contextvars import ContextVar
from dataclasses import dataclass

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    identity: str | None = None
    permissions: tuple[str, ...] = ()


ANONYMOUS = Principal(tenant_id=DEFAULT_TENANT)

# The tenant whose data the current task may touch. The worker sets it for each run, so the
# store a graph receives (TenantScopedStore) scopes every operation without graph changes.
current_tenant: ContextVar[str] = ContextVar("current_tenant", default=DEFAULT_TENANT)
