"""Bearer JWTs from an OIDC identity provider, turned into a `Principal`.

Checks, in order: size and form; header (no key of its own: `jku`, `x5u`, `jwk`, `x5c`; an
allowed `alg`; a `kid`); the key named by `kid`, which must fit `alg`; signature, `exp`
(required), `nbf`, `iat`, `iss` and `aud` (required when configured); the token is an access
token, not an ID token; then tenant, user and roles from the configured claims.

ID tokens (proof of a login, meant for the client) are refused as bearer credentials by this
rule, checked on the verified token:
1. a `typ` header, when present, must be `JWT` or `at+jwt` (RFC 9068), so `id+jwt`,
   `logout+jwt` and the like are refused;
2. a `token_use` claim (Cognito), when present, must be "access" (or `required_token_use`,
   which when set must be present); a `typ` claim (Keycloak), when present, must be "Bearer";
3. a token that does not declare itself an access token by one of the markers above
   (`at+jwt`, `token_use`, Keycloak `typ`) must not carry the ID-token-only claims `nonce`,
   `at_hash` or `c_hash` (OpenID Connect Core 2, 3.1.3.6, 3.3.2.11).
"""

from collections.abc import Mapping
from typing import Any

import jwt

from garrison.auth.jwks import SIGNING_ALGORITHMS, KeySource, key_source_from_settings
from garrison.auth.roles import KNOWN_ROLES
from garrison.config.security_settings import AuthSettings
from garrison.domain.errors import AuthenticationError
from garrison.domain.principal import Principal

# Real access tokens are 1-4 KB; anything far larger is refused before any parsing.
MAX_TOKEN_CHARS = 16 * 1024
# Header members that point at a key: honouring them would let the token choose its own key.
FOREIGN_KEY_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
_ACCESS_TYPES = frozenset({"jwt", "at+jwt"})
_ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash")
_MAX_CLAIM_CHARS = 256

INVALID = "invalid token"
NOT_ACCESS_TOKEN = "not an access token"
_DECODE_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "token audience not accepted"),
    (jwt.InvalidIssuerError, "token issuer not accepted"),
    (jwt.InvalidSignatureError, "invalid token signature"),
    (jwt.InvalidAlgorithmError, "token algorithm not allowed"),
)


class JwtVerifier:
    """Verifies bearer JWTs against the configured JWKS; one instance serves the whole app.

    Raises ValueError at construction when the settings cannot be safe: no key source, a
    symmetric or unknown algorithm, or a `default_role` that is not a known role.
    """

    def __init__(self, settings: AuthSettings, *, keys: KeySource | None = None) -> None:
        unsupported = sorted(set(settings.algorithms) - SIGNING_ALGORITHMS)
        if unsupported or not settings.algorithms:
            raise ValueError(
                f"auth.algorithms must be asymmetric signature algorithms from "
                f"{sorted(SIGNING_ALGORITHMS)}; refused: {unsupported or 'an empty list'}"
            )
        if settings.default_role and settings.default_role not in KNOWN_ROLES:
            raise ValueError(f"auth.default_role must be one of {sorted(KNOWN_ROLES)}")
        self._settings = settings
        self._algorithms = frozenset(settings.algorithms)
        self._keys = keys if keys is not None else key_source_from_settings(settings)

    async def verify(self, token: str) -> Principal:
        """The caller the token proves, or AuthenticationError with a short reason."""
        header = self._checked_header(token)
        algorithm: str = header["alg"]
        key = (await self._keys.key(header["kid"])).for_algorithm(algorithm)
        if key is None:
            raise AuthenticationError("token algorithm does not fit its key")
        claims = self._decode(token, key, algorithm)
        check_access_token(header, claims, self._settings.required_token_use)
        return principal_from_claims(claims, self._settings)

    def _checked_header(self, token: str) -> dict[str, Any]:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise AuthenticationError(INVALID)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError(INVALID) from None
        if FOREIGN_KEY_HEADERS & header.keys():
            raise AuthenticationError("token names its own key")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthenticationError("token algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("token has no key id")
        return header

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        settings = self._settings
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.audience or None,
                issuer=settings.issuer or None,
                leeway=settings.leeway_seconds,
                # PyJWT itself requires `iss` and `aud` when it is given an issuer / audience.
                options={"require": ["exp"], "verify_aud": bool(settings.audience)},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            detail = next((d for kind, d in _DECODE_ERRORS if isinstance(exc, kind)), INVALID)
            raise AuthenticationError(detail) from None


def check_access_token(
    header: Mapping[str, Any], claims: Mapping[str, Any], required_token_use: str | None
) -> None:
    """Refuse ID tokens (and other non-access JWTs) by the rule in the module docstring."""
    typ = _lowered(header.get("typ"))
    if typ is not None and typ.removeprefix("application/") not in _ACCESS_TYPES:
        raise AuthenticationError(NOT_ACCESS_TOKEN)
    token_use = claims.get("token_use")
    if (token_use is not None or required_token_use) and token_use != (
        required_token_use or "access"
    ):
        raise AuthenticationError(NOT_ACCESS_TOKEN)
    keycloak_typ = _lowered(claims.get("typ"))
    if keycloak_typ is not None and keycloak_typ != "bearer":
        raise AuthenticationError(NOT_ACCESS_TOKEN)
    declared = typ == "at+jwt" or token_use is not None or keycloak_typ is not None
    if not declared and any(name in claims for name in _ID_TOKEN_CLAIMS):
        raise AuthenticationError(NOT_ACCESS_TOKEN)


def _lowered(value: object) -> str | None:
    # A non-string marker is malformed; "" matches no accepted value, so the token is refused.
    if value is None:
        return None
    return value.lower() if isinstance(value, str) else ""


def principal_from_claims(claims: Mapping[str, Any], settings: AuthSettings) -> Principal:
    """Tenant, user and roles from the configured claims; no claim falls back to a default
    tenant or user, and only `default_role` stands in for missing roles."""
    tenant = _text(claim(claims, settings.tenant_claim))
    if tenant is None:
        raise AuthenticationError("token has no tenant")
    identity = _text(claim(claims, settings.user_claim))
    if identity is None:
        raise AuthenticationError("token has no user")
    roles = known_roles(claim(claims, settings.roles_claim))
    if not roles and settings.default_role:
        roles = frozenset({settings.default_role})
    if not roles:
        raise AuthenticationError("token has no known role")
    # Limits count per user, not per token: a fresh token must not mean a fresh bucket.
    return Principal(
        tenant_id=tenant,
        identity=identity,
        roles=roles,
        auth_kind="jwt",
        credential_id=f"user:{identity}",
    )


def claim(claims: Mapping[str, Any], name: str) -> object:
    """The claim `name`; a dotted name absent as such walks nested objects (`realm_access.roles`).

    The name is tried whole first: namespaced claims such as `https://example.com/tenant`
    contain dots of their own.
    """
    if name in claims:
        return claims[name]
    value: object = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def known_roles(value: object) -> frozenset[str]:
    """The known roles in a list or a space-separated string; anything else grants none."""
    if isinstance(value, str):
        names: list[object] = list(value.split())
    elif isinstance(value, list):
        names = value
    else:
        return frozenset()
    return frozenset(name for name in names if isinstance(name, str) and name in KNOWN_ROLES)


def _text(value: object) -> str | None:
    # Ids end up in queries, logs and audit rows: printable, bounded strings only.
    if isinstance(value, str) and 0 < len(value) <= _MAX_CLAIM_CHARS and value.isprintable():
        return value
    return None


__all__ = [
    "JwtVerifier",
    "check_access_token",
    "claim",
    "known_roles",
    "principal_from_claims",
]
