"""The public keys JWTs are verified with: a JWKS fetched from the IdP (cached) or read from a file.

Keys come from configuration only, never from a token (`JwtVerifier` refuses `jku`, `x5u`,
`jwk` and `x5c` headers). A key serves only the algorithms its type allows, so a token cannot
pick HS256 and have an RSA public key used as its HMAC secret.
"""

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from jwt import PyJWK, PyJWTError

from garrison.config.security_settings import AuthSettings
from garrison.domain.errors import AuthenticationError

logger = logging.getLogger(__name__)

# Asymmetric algorithms only: a JWKS is public, so a symmetric key in it would be a shared secret
# anyone can read. Each maps to the key type (and curves) that can verify it.
KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "ES256K": ("EC", frozenset({"secp256k1"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
SIGNING_ALGORITHMS = frozenset(KEY_TYPES)

# An IdP's JWKS is a few kilobytes; the cap keeps a hostile or broken endpoint from filling memory.
MAX_JWKS_BYTES = 1 << 20
# Members only private keys have (RSA, EC/OKP): such a JWK is a leaked secret, not a key to use.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})

UNKNOWN_KEY = "unknown token signing key"
KEYS_UNAVAILABLE = "token signing keys unavailable"


class JwksError(Exception):
    """The JWKS document is unusable (not JSON, no usable keys, too large, HTTP error)."""


class SigningKey:
    """One public key of the set, and the PyJWT key for each algorithm it may verify."""

    def __init__(self, jwk: dict[str, Any]) -> None:
        self.kid: str = jwk["kid"]
        self._jwk = jwk
        self._by_algorithm: dict[str, PyJWK] = {}

    def accepts(self, algorithm: str) -> bool:
        """True when `algorithm` fits this key's type and curve (and its `alg`, if declared)."""
        expected = KEY_TYPES.get(algorithm)
        if expected is None:
            return False
        kty, curves = expected
        if self._jwk.get("kty") != kty:
            return False
        if curves is not None and self._jwk.get("crv") not in curves:
            return False
        declared = self._jwk.get("alg")
        return declared is None or declared == algorithm

    def for_algorithm(self, algorithm: str) -> PyJWK | None:
        """The PyJWT key bound to `algorithm`, or None when this key may not verify it."""
        if not self.accepts(algorithm):
            return None
        key = self._by_algorithm.get(algorithm)
        if key is None:
            key = self._by_algorithm[algorithm] = PyJWK(self._jwk, algorithm)
        return key


def parse_jwks(document: object) -> dict[str, SigningKey]:
    """The usable signing keys of a JWKS document, by `kid`.

    Keys without a `kid`, meant for encryption, symmetric, carrying private members or that
    PyJWT cannot load are skipped; a set left empty is an error.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWKS document")
    keys: dict[str, SigningKey] = {}
    for jwk in document["keys"]:
        if not _usable(jwk) or jwk["kid"] in keys:
            continue
        try:
            PyJWK(jwk)  # loads the key material once, so broken keys are dropped here
        except PyJWTError:
            continue
        keys[jwk["kid"]] = SigningKey(jwk)
    if not keys:
        raise JwksError("the JWKS holds no usable signing key")
    return keys


def _usable(jwk: object) -> bool:
    if not isinstance(jwk, dict):
        return False
    kid = jwk.get("kid")
    return (
        isinstance(kid, str)
        and bool(kid)
        and jwk.get("kty") in {"RSA", "EC", "OKP"}
        and jwk.get("use", "sig") == "sig"
        and not _PRIVATE_MEMBERS & jwk.keys()
    )


class KeySource(Protocol):
    async def key(self, kid: str) -> SigningKey:
        """The key named `kid`; AuthenticationError when unknown or when keys cannot be had."""
        ...


class FileKeySource:
    """A JWKS read once from a file (air-gapped deployments); rotating keys needs a restart."""

    def __init__(self, path: Path) -> None:
        try:
            self._keys = parse_jwks(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, JwksError) as exc:
            raise ValueError(f"cannot load the JWKS file {path}: {exc}") from None

    async def key(self, kid: str) -> SigningKey:
        try:
            return self._keys[kid]
        except KeyError:
            raise AuthenticationError(UNKNOWN_KEY) from None


def check_jwks_url(url: str) -> None:
    """Refuse a JWKS URL that could be tampered with in transit: https, or http on loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return
    raise ValueError(f"the JWKS URL must use https (http only on loopback): {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UrlKeySource:
    """The IdP's JWKS over HTTP, cached for `cache_seconds`.

    A `kid` missing from a fresh set triggers a refetch (the IdP may have rotated keys) at most
    once per `min_refetch_seconds`; a failed fetch is retried no sooner either, so forged kids or
    a down IdP never turn our traffic into a flood of requests to it.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        min_refetch_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_jwks_url(url)
        self._url = url
        self._cache_seconds = cache_seconds
        self._min_refetch_seconds = min_refetch_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._keys: dict[str, SigningKey] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._last_fetch_ok = False
        # One fetch at a time: requests arriving meanwhile wait for its result.
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> SigningKey:
        keys = self._current(self._clock())
        if keys is not None and kid in keys:
            return keys[kid]
        async with self._lock:
            # Re-read: the task that held the lock may have fetched the set we need.
            now = self._clock()
            keys = self._current(now)
            if keys is None or kid not in keys:
                if not self._fetch_allowed(now, expired=keys is None):
                    raise AuthenticationError(KEYS_UNAVAILABLE if keys is None else UNKNOWN_KEY)
                keys = await self._refresh(now)
        try:
            return keys[kid]
        except KeyError:
            raise AuthenticationError(UNKNOWN_KEY) from None

    def _current(self, now: float) -> dict[str, SigningKey] | None:
        if self._keys is None or now - self._fetched_at > self._cache_seconds:
            return None
        return self._keys

    def _fetch_allowed(self, now: float, *, expired: bool) -> bool:
        if self._attempted_at is None or (expired and self._last_fetch_ok):
            return True
        return now - self._attempted_at >= self._min_refetch_seconds

    async def _refresh(self, now: float) -> dict[str, SigningKey]:
        self._attempted_at = now
        self._last_fetch_ok = False
        try:
            keys = parse_jwks(json.loads(await self._download()))
        except (httpx.HTTPError, JwksError, ValueError) as exc:
            logger.warning("fetching the JWKS from %s failed: %s", self._url, exc)
            raise AuthenticationError(KEYS_UNAVAILABLE) from None
        self._keys, self._fetched_at, self._last_fetch_ok = keys, now, True
        return keys

    async def _download(self) -> bytes:
        async with (
            httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client,
            client.stream("GET", self._url, headers={"accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise JwksError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError("the JWKS is larger than 1 MiB")
            return bytes(body)


def key_source_from_settings(settings: AuthSettings) -> KeySource:
    """The key source the settings name: exactly one of `jwks_url` and `jwks_file`."""
    if settings.jwks_file is not None and settings.jwks_url is None:
        return FileKeySource(settings.jwks_file)
    if settings.jwks_url is not None and settings.jwks_file is None:
        return UrlKeySource(
            settings.jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            timeout_seconds=settings.jwks_timeout_seconds,
        )
    raise ValueError("JWT authentication needs exactly one of auth.jwks_url, auth.jwks_file")


__all__ = [
    "KEYS_UNAVAILABLE",
    "SIGNING_ALGORITHMS",
    "UNKNOWN_KEY",
    "FileKeySource",
    "KeySource",
    "SigningKey",
    "UrlKeySource",
    "check_jwks_url",
    "key_source_from_settings",
    "parse_jwks",
]
