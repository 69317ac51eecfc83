"""The `user` role's rule: a caller whose only way to threads is the `user` role works
with the threads (and their runs) it created, not its colleagues' — the same tenant, but
each user's conversations are their own. Admins, developers and viewers see the tenant."""

from typing import Any

from garrison.domain.access import AccessFilter
from garrison.domain.principal import Principal
from garrison.services.authorization import Resource

# Roles that see every thread of their tenant.
_TENANT_WIDE = frozenset({"admin", "developer", "viewer"})


class OwnershipAuthorizer:
    async def authorize(
        self, principal: Principal, resource: Resource, action: str, value: dict[str, Any]
    ) -> AccessFilter | None:
        if resource != "threads" or "user" not in principal.roles:
            return None
        if principal.roles & _TENANT_WIDE or principal.identity is None:
            return None
        return AccessFilter(owner=principal.identity)


__all__ = ["OwnershipAuthorizer"]
