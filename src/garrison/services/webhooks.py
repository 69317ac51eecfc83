"""Webhooks: a POST to a client-chosen URL when a run ends, without opening an SSRF hole.

A URL must be http(s), within the length limit, on an allowed port and domain, and resolve
only to public addresses unless configuration allows loopback or private ones; cloud
metadata endpoints are never allowed. The check runs when the run is created and again,
with a fresh DNS lookup, right before sending. Redirects are not followed.
"""

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from garrison import serde
from garrison.config.settings import WebhookSettings
from garrison.domain.clock import to_text, utcnow
from garrison.domain.errors import InvalidArgumentError
from garrison.runtime.executor import AttemptResult
from garrison.storage.models import Run

logger = logging.getLogger(__name__)

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_METADATA_IPS = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookPolicy:
    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def check_shape(self, url: str) -> tuple[str, int]:
        """Validate everything but DNS; returns (host, port)."""
        settings = self._settings
        if len(url) > settings.max_url_length:
            raise InvalidArgumentError(f"Webhook URL longer than {settings.max_url_length}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise InvalidArgumentError("Webhook URL must be an absolute http(s) URL")
        if settings.require_https and parts.scheme != "https":
            raise InvalidArgumentError("Webhook URL must use https")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise InvalidArgumentError("Webhook URL has no host")
        if parts.username or parts.password:
            raise InvalidArgumentError("Webhook URL must not carry credentials")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InvalidArgumentError("Webhook URL has an invalid port") from None
        if settings.allowed_ports and port not in settings.allowed_ports:
            raise InvalidArgumentError(f"Webhook port {port} is not allowed")
        if settings.allowed_domains and not any(
            _domain_matches(host, pattern) for pattern in settings.allowed_domains
        ):
            raise InvalidArgumentError(f"Webhook host {host!r} is not in the allowed domains")
        if host in _METADATA_HOSTS or host.endswith((".internal", ".cluster.local")):
            raise InvalidArgumentError(f"Webhook host {host!r} is not allowed")
        is_localhost = host == "localhost" or host.endswith(".localhost")
        if is_localhost and not settings.allow_loopback:
            raise InvalidArgumentError("Webhook URL must not target localhost")
        return host, port

    def check_addresses(self, addresses: Iterable[IPAddress]) -> None:
        for address in addresses:
            if address in _METADATA_IPS:
                raise InvalidArgumentError("Webhook URL targets a cloud metadata address")
            if address.is_loopback:
                if not self._settings.allow_loopback:
                    raise InvalidArgumentError("Webhook URL must not target a loopback address")
            elif address.is_link_local or address.is_multicast or address.is_unspecified:
                raise InvalidArgumentError("Webhook URL targets a non-routable address")
            elif address.is_private and not self._settings.allow_private:
                raise InvalidArgumentError("Webhook URL must not target a private address")

    async def validate(self, url: str) -> None:
        """Raise InvalidArgumentError (422) unless `url` is an acceptable webhook target."""
        host, port = self.check_shape(url)
        self.check_addresses(await _resolve(host, port))


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidArgumentError(f"Webhook host {host!r} does not resolve") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def _domain_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def webhook_payload(run: Run, result: AttemptResult, started_at: str | None) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": to_text(run.created_at),
        "updated_at": to_text(run.updated_at),
        "metadata": run.metadata,
        "kwargs": run.kwargs,
        "multitask_strategy": run.multitask_strategy.value,
        "status": _STATUS[result.end.value],
        "run_started_at": started_at,
        "run_ended_at": to_text(utcnow()),
        "webhook_sent_at": to_text(utcnow()),
        "values": result.state.values if result.state is not None else None,
        "error": result.error,
    }


_STATUS = {
    "success": "success",
    "error": "error",
    "timeout": "timeout",
    "interrupted": "interrupted",
    "rolled_back": "interrupted",
}


class WebhookSender:
    """The worker's run-end hook that delivers webhooks."""

    def __init__(self, policy: WebhookPolicy, *, timeout_seconds: float) -> None:
        self._policy = policy
        self._client = httpx.AsyncClient(
            timeout=timeout_seconds, follow_redirects=False, trust_env=False
        )

    async def __call__(self, run: Run, result: AttemptResult) -> None:
        url = run.kwargs.get("webhook")
        if not url or not self._policy.enabled:
            return
        try:
            await self._policy.validate(url)  # DNS may have changed since the run was created
            response = await self._client.post(
                url,
                content=serde.dumps(webhook_payload(run, result, None)),
                headers={"Content-Type": "application/json"},
            )
            if response.status_code >= 400:
                logger.warning("webhook for run %s got HTTP %d", run.run_id, response.status_code)
        except (InvalidArgumentError, httpx.HTTPError) as exc:
            logger.warning("webhook for run %s not delivered: %s", run.run_id, exc)

    async def close(self) -> None:
        await self._client.aclose()
