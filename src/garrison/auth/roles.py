"""Roles and what each may do over HTTP, per resource and action.

- admin: everything in its tenant (and, from the command line, its API keys);
- developer: assistants, threads, runs, crons and the store;
- user: reads assistants; creates and works with its own threads and their runs (the
  ownership rule is `garrison.auth.ownership`);
- viewer: reads and searches everything in the tenant, changes nothing.
"""

from collections.abc import Iterable

from garrison.auth.route_policy import Permission

_ALL = ("create", "read", "update", "delete", "search")
_READ = ("read", "search")

GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "admin": {r: _ALL for r in ("assistants", "threads", "runs", "crons", "store")},
    "developer": {r: _ALL for r in ("assistants", "threads", "runs", "crons", "store")},
    "user": {"assistants": _READ, "threads": _ALL, "runs": _ALL},
    "viewer": {r: _READ for r in ("assistants", "threads", "runs", "crons", "store")},
}
KNOWN_ROLES = frozenset(GRANTS)


def allows(roles: Iterable[str], permission: Permission) -> bool:
    """True when any of `roles` grants `permission` (unknown roles grant nothing)."""
    return any(
        permission.action in GRANTS.get(role, {}).get(permission.resource, ()) for role in roles
    )


__all__ = ["GRANTS", "KNOWN_ROLES", "allows"]
