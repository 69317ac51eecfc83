"""What every route does, as (resource, action): the one table that authorization, the audit
log and the tenant-isolation test matrix read.

A route missing from the table makes `permission_for` raise, and the app refuses to start
(`garrison.auth.guard.guard_routes`): a new endpoint cannot ship without a decision about
who may call it. `PUBLIC` routes skip authentication (probes, docs, metrics).
"""

from dataclasses import dataclass
from typing import Literal

Resource = Literal["assistants", "threads", "runs", "crons", "store", "system"]
Action = Literal["create", "read", "update", "delete", "search"]

# Actions that change state: the audit log records each such call.
MUTATING: frozenset[str] = frozenset({"create", "update", "delete"})


@dataclass(frozen=True, slots=True)
class Permission:
    resource: Resource
    action: Action

    @property
    def mutating(self) -> bool:
        return self.action in MUTATING

    def __str__(self) -> str:
        return f"{self.resource}.{self.action}"


PUBLIC = None  # no credentials needed

_A: Resource = "assistants"
_T: Resource = "threads"
_R: Resource = "runs"
_C: Resource = "crons"
_S: Resource = "store"

_ROUTES: dict[tuple[str, str], Permission | None] = {
    # system
    ("GET", "/"): PUBLIC,
    ("GET", "/ok"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/info"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # assistants
    ("POST", "/assistants"): Permission(_A, "create"),
    ("POST", "/assistants/search"): Permission(_A, "search"),
    ("POST", "/assistants/count"): Permission(_A, "search"),
    ("GET", "/assistants/{assistant_id}"): Permission(_A, "read"),
    ("PATCH", "/assistants/{assistant_id}"): Permission(_A, "update"),
    ("DELETE", "/assistants/{assistant_id}"): Permission(_A, "delete"),
    ("GET", "/assistants/{assistant_id}/graph"): Permission(_A, "read"),
    ("GET", "/assistants/{assistant_id}/schemas"): Permission(_A, "read"),
    ("GET", "/assistants/{assistant_id}/subgraphs"): Permission(_A, "read"),
    ("GET", "/assistants/{assistant_id}/subgraphs/{namespace}"): Permission(_A, "read"),
    ("POST", "/assistants/{assistant_id}/versions"): Permission(_A, "read"),
    ("POST", "/assistants/{assistant_id}/latest"): Permission(_A, "update"),
    # threads
    ("POST", "/threads"): Permission(_T, "create"),
    ("POST", "/threads/search"): Permission(_T, "search"),
    ("POST", "/threads/count"): Permission(_T, "search"),
    ("POST", "/threads/prune"): Permission(_T, "delete"),
    ("GET", "/threads/{thread_id}"): Permission(_T, "read"),
    ("PATCH", "/threads/{thread_id}"): Permission(_T, "update"),
    ("DELETE", "/threads/{thread_id}"): Permission(_T, "delete"),
    ("POST", "/threads/{thread_id}/copy"): Permission(_T, "create"),
    ("GET", "/threads/{thread_id}/state"): Permission(_T, "read"),
    ("POST", "/threads/{thread_id}/state"): Permission(_T, "update"),
    ("POST", "/threads/{thread_id}/state/checkpoint"): Permission(_T, "read"),
    ("GET", "/threads/{thread_id}/state/{checkpoint_id}"): Permission(_T, "read"),
    ("GET", "/threads/{thread_id}/history"): Permission(_T, "read"),
    ("POST", "/threads/{thread_id}/history"): Permission(_T, "read"),
    ("GET", "/threads/{thread_id}/stream"): Permission(_T, "read"),
    # runs
    ("POST", "/threads/{thread_id}/runs"): Permission(_R, "create"),
    ("POST", "/threads/{thread_id}/runs/stream"): Permission(_R, "create"),
    ("POST", "/threads/{thread_id}/runs/wait"): Permission(_R, "create"),
    ("POST", "/runs"): Permission(_R, "create"),
    ("POST", "/runs/stream"): Permission(_R, "create"),
    ("POST", "/runs/wait"): Permission(_R, "create"),
    ("POST", "/runs/batch"): Permission(_R, "create"),
    ("GET", "/threads/{thread_id}/runs"): Permission(_R, "search"),
    ("GET", "/threads/{thread_id}/runs/{run_id}"): Permission(_R, "read"),
    ("DELETE", "/threads/{thread_id}/runs/{run_id}"): Permission(_R, "delete"),
    ("GET", "/threads/{thread_id}/runs/{run_id}/join"): Permission(_R, "read"),
    ("GET", "/runs/{run_id}/join"): Permission(_R, "read"),
    ("GET", "/threads/{thread_id}/runs/{run_id}/stream"): Permission(_R, "read"),
    ("GET", "/runs/{run_id}/stream"): Permission(_R, "read"),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"): Permission(_R, "update"),
    ("POST", "/runs/cancel"): Permission(_R, "update"),
    # crons
    ("POST", "/threads/{thread_id}/runs/crons"): Permission(_C, "create"),
    ("POST", "/runs/crons"): Permission(_C, "create"),
    ("POST", "/runs/crons/search"): Permission(_C, "search"),
    ("POST", "/runs/crons/count"): Permission(_C, "search"),
    ("GET", "/runs/crons/{cron_id}"): Permission(_C, "read"),
    ("PATCH", "/runs/crons/{cron_id}"): Permission(_C, "update"),
    ("DELETE", "/runs/crons/{cron_id}"): Permission(_C, "delete"),
    # store
    ("PUT", "/store/items"): Permission(_S, "update"),
    ("GET", "/store/items"): Permission(_S, "read"),
    ("DELETE", "/store/items"): Permission(_S, "delete"),
    ("POST", "/store/items/search"): Permission(_S, "search"),
    ("POST", "/store/namespaces"): Permission(_S, "search"),
}


class UnclassifiedRouteError(LookupError):
    """A route with no entry in the policy table."""


def permission_for(method: str, template: str) -> Permission | None:
    """The permission a request to `template` needs; None for a public route.

    HEAD is answered like GET. Raises UnclassifiedRouteError for a route not in the table.
    """
    key = ("GET" if method == "HEAD" else method, template)
    try:
        return _ROUTES[key]
    except KeyError:
        raise UnclassifiedRouteError(f"no policy for {method} {template}") from None


def classified_routes() -> dict[tuple[str, str], Permission | None]:
    """Every (method, template) the table knows (tests build their matrices from it)."""
    return dict(_ROUTES)


__all__ = [
    "MUTATING",
    "PUBLIC",
    "Permission",
    "UnclassifiedRouteError",
    "classified_routes",
    "permission_for",
]
