"""The audit middleware (pure ASGI): one audit record per authentication failure,
authorization denial, mutating call and (with `audit.record_reads`) authenticated read.

It wraps the authentication middleware, so it sees the 401s and 403s that never reach a
route, and reads what the layers inside left on the scope (`state.principal`,
`state.auth_event`, `route`, `path_params`). The record's write starts with the response
and runs while it goes out (a stream's record is written when the stream opens); the
request ends once the record is written. A failed write is logged and counted, never turned
into an error for the caller. Never recorded: bodies, query strings, headers (keys, tokens).
"""

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from garrison.auth.route_policy import UnclassifiedRouteError, permission_for
from garrison.config.settings import Settings
from garrison.security.audit import AuditEvent, Outcome
from garrison.security.redaction import Redactor
from garrison.storage.ports import AuditLog

__all__ = ["AUDIT_WRITE_FAILURES", "AuditMiddleware", "TrustedProxies", "audit_outcome"]

logger = logging.getLogger("garrison.audit")

AUDIT_WRITE_FAILURES = Counter(
    "garrison_audit_write_failures", "Audit records that could not be written."
)

# nginx's "client closed request": the caller left before the response started, so the
# call's effect is unknown (a run may have been created).
CLIENT_GONE = 499
_SUMMARY_MAX = 300
_ID_MAX = 200
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Which peers' X-Forwarded-For is believed (`server.trusted_proxies`: addresses,
    CIDR networks, or `*`), and the client address that follows from it."""

    def __init__(self, entries: Sequence[str]) -> None:
        self._any = "*" in entries
        self._networks: list[Network] = [
            ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry != "*"
        ]

    def trusts(self, address: str) -> bool:
        if self._any:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The peer, or, when the peer is a trusted proxy, the right-most X-Forwarded-For
        hop that is not one (hops left of it are the client's to invent)."""
        if peer is None or forwarded_for is None or not self.trusts(peer):
            return peer
        address = peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return address  # garbage: stop at the last hop a trusted proxy vouched for
            address = hop
            if not self.trusts(hop):
                return hop
        return address


def audit_outcome(status: int, auth_outcome: str | None) -> Outcome:
    """The record's outcome: the auth layer's verdict first, then the status class."""
    if auth_outcome == "failure" or status == 401:
        return "failure"
    if auth_outcome == "denied" or status == 403:
        return "denied"
    if status >= 500 or status == CLIENT_GONE:
        return "error"
    return "success" if status < 400 else "failure"


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope["headers"] if k == name]
    return ",".join(values) if values else None


def _route(scope: Scope) -> tuple[str | None, dict[str, Any]]:
    """The route template and path params: from routing, or matched here for requests the
    authentication middleware refused before routing."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None), dict(scope.get("path_params") or {})
    routes: list[BaseRoute] = getattr(getattr(scope.get("app"), "router", None), "routes", [])
    partial: tuple[str | None, dict[str, Any]] | None = None
    for candidate in routes:
        match, child = candidate.matches(scope)
        found = (getattr(candidate, "path", None), dict(child.get("path_params") or {}))
        if match is Match.FULL:
            return found
        if match is Match.PARTIAL and partial is None:
            partial = found
    return partial or (None, {})


class AuditMiddleware:
    """`audit_log` is called per request: storage opens after the middleware is built."""

    def __init__(
        self, app: ASGIApp, *, settings: Settings, audit_log: Callable[[], AuditLog]
    ) -> None:
        self.app = app
        self._enabled = settings.audit.enabled
        self._record_reads = settings.audit.record_reads
        self._proxies = TrustedProxies(settings.server.trusted_proxies)
        self._redactor = Redactor(settings.audit.redact_patterns)
        self._audit_log = audit_log
        self._writes: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._enabled:
            await self.app(scope, receive, send)
            return
        started = False
        write: asyncio.Task[None] | None = None

        async def send_and_record(message: Message) -> None:
            nonlocal started, write
            if message["type"] == "http.response.start" and not started:
                started = True
                write = self._start_write(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except BaseException as exc:
            if not started:  # the app failed (500) or the client went away (499) first
                started = True
                write = self._start_write(scope, 500 if isinstance(exc, Exception) else CLIENT_GONE)
            raise
        finally:
            if write is not None:
                # The request ends only once its record is written; shielded, so a caller
                # that disconnects (cancelling this task) cannot cut the write short.
                await asyncio.shield(write)

    def _start_write(self, scope: Scope, status: int) -> asyncio.Task[None] | None:
        """Start writing the record, if this request needs one: it runs while the response
        goes out, so the caller does not wait for it."""
        event = self._event(scope, status)
        if event is None:
            return None
        write = asyncio.ensure_future(self._write(event))
        self._writes.add(write)  # a strong reference until it is done
        write.add_done_callback(self._writes.discard)
        return write

    async def _write(self, event: AuditEvent) -> None:
        try:
            await self._audit_log().append(event)
        except Exception:
            AUDIT_WRITE_FAILURES.inc()
            logger.exception(
                "could not write the audit record of %s %s (%s)",
                event.action,
                event.resource,
                event.outcome,
            )

    def _event(self, scope: Scope, status: int) -> AuditEvent | None:
        state = scope.get("state") or {}
        auth_event = state.get("auth_event") or {}
        auth_outcome = auth_event.get("outcome")
        template, path_params = _route(scope)
        try:
            permission = permission_for(scope["method"], template) if template else None
        except UnclassifiedRouteError:
            permission = None
        mutating = permission is not None and permission.mutating
        wanted = (
            auth_outcome in ("failure", "denied")
            or mutating
            or (auth_outcome == "success" and self._record_reads)
        )
        if not wanted:
            return None
        principal = state.get("principal")
        client = scope.get("client")
        reason = auth_event.get("reason")
        summary = f"{scope['method']} {scope['path']} {status}" + (f": {reason}" if reason else "")
        return AuditEvent(
            time=datetime.now(UTC),
            request_id=str(state.get("request_id", "")),
            actor=getattr(principal, "identity", None),
            credential_id=getattr(principal, "credential_id", None),
            tenant_id=getattr(principal, "tenant_id", None),
            action=str(permission) if permission is not None else "unrouted",
            resource=template or "unrouted",
            object_ids={k: str(v)[:_ID_MAX] for k, v in path_params.items()},
            outcome=audit_outcome(status, auth_outcome),
            status=status,
            client_ip=self._proxies.client_ip(
                client[0] if client else None, _header(scope, b"x-forwarded-for")
            ),
            summary=self._redactor.redact(summary.replace("\r", "\\r").replace("\n", "\\n"))[
                :_SUMMARY_MAX
            ],
        )
