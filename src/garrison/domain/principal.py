"""Who is calling: the tenant every query is scoped to, the identity that owns rows, and the
roles that decide what the caller may do."""

from contextvars import ContextVar
from dataclasses import dataclass, field

from garrison.domain.auth_user import AuthUser

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    identity: str | None = None
    permissions: tuple[str, ...] = ()
    roles: frozenset[str] = field(default_factory=frozenset)
    # What proved the identity ("none", "api_key", "jwt", "custom") and, for API keys, the
    # key's public id: rate limits and stream caps count per credential.
    auth_kind: str = "none"
    credential_id: str | None = None
    # The user custom auth handlers and graphs see (`langgraph_auth_user`); None when the
    # caller is anonymous.
    user: AuthUser | None = field(default=None, compare=False)

    @property
    def graph_user(self) -> AuthUser | None:
        """The user a run's graph sees as `langgraph_auth_user`."""
        if self.user is not None:
            return self.user
        if self.identity is None:
            return None
        return AuthUser({"identity": self.identity, "permissions": list(self.permissions)})

    @property
    def rate_key(self) -> str:
        """The bucket rate limits and connection caps are counted in."""
        return self.credential_id or self.identity or f"tenant:{self.tenant_id}"


ANONYMOUS = Principal(tenant_id=DEFAULT_TENANT, roles=frozenset({"admin"}))

# The tenant whose data the current task may touch. The worker sets it for each run, so the
# store a graph receives (TenantScopedStore) scopes every operation without graph changes.
current_tenant: ContextVar[str] = ContextVar("current_tenant", default=DEFAULT_TENANT)
