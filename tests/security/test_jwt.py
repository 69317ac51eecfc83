"""S4: JWT / OIDC bearer tokens. Every attack in the S4 list is refused, each next to a control
token that differs only in the attacked property and is accepted; valid tokens map to the right
Principal; the JWKS is fetched from a real HTTP server on loopback, cached and refetched sparingly.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from garrison.auth.jwks import (
    KEYS_UNAVAILABLE,
    UNKNOWN_KEY,
    JwksError,
    SigningKey,
    UrlKeySource,
    check_jwks_url,
    parse_jwks,
)
from garrison.auth.jwt_verifier import NOT_ACCESS_TOKEN, JwtVerifier
from garrison.config.security_settings import AuthSettings
from garrison.domain.errors import AuthenticationError
from garrison.domain.principal import Principal
from tests.support.jwks_server import JwksServer

ISSUER = "https://idp.test/realms/garrison"
AUDIENCE = "garrison-api"
CACHE_SECONDS = 300.0
REFETCH_SECONDS = 30.0
DROP = object()  # a claim value meaning "leave this claim out"

RsaKey = rsa.RSAPrivateKey
EcKey = ec.EllipticCurvePrivateKey


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def rsa_key() -> RsaKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> EcKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def attacker_key() -> RsaKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private: RsaKey | EcKey, kid: str) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


@pytest.fixture
def idp(rsa_key: RsaKey, ec_key: EcKey) -> Iterator[JwksServer]:
    with JwksServer([public_jwk(rsa_key, "rsa-1"), public_jwk(ec_key, "ec-1")]) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def settings(**overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "mode": "jwt",
        "issuer": ISSUER,
        "audience": [AUDIENCE],
        "jwks_url": "http://127.0.0.1:9/unused",
        **overrides,
    }
    return AuthSettings(**values)


def verifier_for(idp: JwksServer, clock: FakeClock, **overrides: Any) -> JwtVerifier:
    keys = UrlKeySource(
        idp.url,
        cache_seconds=CACHE_SECONDS,
        min_refetch_seconds=REFETCH_SECONDS,
        timeout_seconds=2.0,
        clock=clock,
    )
    return JwtVerifier(settings(jwks_url=idp.url, **overrides), keys=keys)


@pytest.fixture
def verifier(idp: JwksServer, clock: FakeClock) -> JwtVerifier:
    return verifier_for(idp, clock)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "tenant": "acme",
        "roles": ["developer"],
        "iat": now,
        "exp": now + 300,
        "jti": "token-1",
        **overrides,
    }
    return {name: value for name, value in values.items() if value is not DROP}


def sign(
    private: RsaKey | EcKey,
    payload: dict[str, Any] | None = None,
    *,
    kid: str = "rsa-1",
    alg: str = "RS256",
    **headers: Any,
) -> str:
    return jwt.encode(
        payload if payload is not None else claims(), private, alg, headers={"kid": kid, **headers}
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand: PyJWT refuses to produce these attacks itself."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


async def rejected(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(token)
    return caught.value.detail


# --- acceptance and claim mapping ---------------------------------------------------------


async def test_valid_rs256_token_maps_claims_to_principal(
    verifier: JwtVerifier, rsa_key: RsaKey
) -> None:
    principal = await verifier.verify(sign(rsa_key, claims(roles=["developer", "viewer"])))
    assert principal == Principal(
        tenant_id="acme",
        identity="user-1",
        roles=frozenset({"developer", "viewer"}),
        auth_kind="jwt",
        credential_id="user:user-1",
    )


async def test_valid_es256_token_is_accepted(verifier: JwtVerifier, ec_key: EcKey) -> None:
    principal = await verifier.verify(sign(ec_key, kid="ec-1", alg="ES256"))
    assert (principal.tenant_id, principal.identity) == ("acme", "user-1")


async def test_verifier_built_from_settings_alone_uses_the_configured_jwks(
    idp: JwksServer, rsa_key: RsaKey
) -> None:
    verifier = JwtVerifier(settings(jwks_url=idp.url))
    assert (await verifier.verify(sign(rsa_key))).identity == "user-1"
    assert idp.fetches == 1


async def test_dotted_claim_names_reach_into_nested_claims(
    idp: JwksServer, clock: FakeClock, rsa_key: RsaKey
) -> None:
    verifier = verifier_for(
        idp,
        clock,
        tenant_claim="org.id",
        user_claim="preferred_username",
        roles_claim="realm_access.roles",
    )
    token = sign(
        rsa_key,
        claims(
            org={"id": "globex"},
            preferred_username="alice",
            realm_access={"roles": ["admin", "offline_access", "uma_authorization"]},
            roles=DROP,
        ),
    )
    principal = await verifier.verify(token)
    assert (principal.tenant_id, principal.identity) == ("globex", "alice")
    assert principal.roles == {"admin"}


async def test_a_claim_name_containing_dots_is_read_whole(
    idp: JwksServer, clock: FakeClock, rsa_key: RsaKey
) -> None:
    verifier = verifier_for(idp, clock, tenant_claim="https://garrison.test/tenant")
    token = sign(rsa_key, claims(tenant=DROP, **{"https://garrison.test/tenant": "initech"}))
    assert (await verifier.verify(token)).tenant_id == "initech"


async def test_space_separated_roles_keep_only_known_roles(
    verifier: JwtVerifier, rsa_key: RsaKey
) -> None:
    principal = await verifier.verify(sign(rsa_key, claims(roles="viewer superuser user")))
    assert principal.roles == {"viewer", "user"}


async def test_default_role_applies_only_when_no_known_role(
    idp: JwksServer, clock: FakeClock, rsa_key: RsaKey
) -> None:
    verifier = verifier_for(idp, clock, default_role="viewer")
    assert (await verifier.verify(sign(rsa_key, claims(roles=["root"])))).roles == {"viewer"}
    assert (await verifier.verify(sign(rsa_key, claims(roles=DROP)))).roles == {"viewer"}
    assert (await verifier.verify(sign(rsa_key, claims(roles=["user"])))).roles == {"user"}


async def test_token_without_known_role_and_no_default_is_rejected(
    verifier: JwtVerifier, rsa_key: RsaKey
) -> None:
    assert await rejected(verifier, sign(rsa_key, claims(roles=["root"]))) == (
        "token has no known role"
    )
    assert await rejected(verifier, sign(rsa_key, claims(roles=DROP))) == "token has no known role"


@pytest.mark.parametrize("tenant", [DROP, "", 42, ["acme"], "acme\r\nforged"])
async def test_token_without_a_usable_tenant_is_rejected(
    verifier: JwtVerifier, rsa_key: RsaKey, tenant: object
) -> None:
    assert await rejected(verifier, sign(rsa_key, claims(tenant=tenant))) == "token has no tenant"


async def test_token_without_a_user_is_rejected(verifier: JwtVerifier, rsa_key: RsaKey) -> None:
    assert await rejected(verifier, sign(rsa_key, claims(sub=DROP))) == "token has no user"


async def test_limits_count_per_user_not_per_token(verifier: JwtVerifier, rsa_key: RsaKey) -> None:
    first = await verifier.verify(sign(rsa_key))
    fresh = await verifier.verify(sign(rsa_key, claims(jti="token-2")))
    assert first.rate_key == fresh.rate_key == "user:user-1"


# --- the S4 rejection list -----------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", None, ["RS256"], {"RS256": 1}])
async def test_alg_none_is_rejected(verifier: JwtVerifier, alg: object) -> None:
    token = forge({"alg": alg, "kid": "rsa-1", "typ": "JWT"}, claims(), secret=None)
    assert await rejected(verifier, token) == "token algorithm not allowed"


async def test_hs256_signed_with_the_rsa_public_key_is_rejected(
    verifier: JwtVerifier, rsa_key: RsaKey
) -> None:
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = forge({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}, claims(), secret=public_pem)
    assert await rejected(verifier, token) == "token algorithm not allowed"


@pytest.mark.parametrize("algorithms", [["HS256"], ["RS256", "HS512"], ["RS256", "none"], []])
def test_symmetric_or_unknown_algorithms_cannot_be_configured(algorithms: list[str]) -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        JwtVerifier(settings(algorithms=algorithms))


async def test_algorithm_must_fit_the_type_of_the_named_key(
    verifier: JwtVerifier, ec_key: EcKey
) -> None:
    # An allowed algorithm (ES256) naming an RSA key: the key may only verify RSA algorithms.
    assert await verifier.verify(sign(ec_key, kid="ec-1", alg="ES256"))
    token = sign(ec_key, kid="rsa-1", alg="ES256")
    assert await rejected(verifier, token) == "token algorithm does not fit its key"


def test_signing_key_accepts_only_algorithms_of_its_type(rsa_key: RsaKey, ec_key: EcKey) -> None:
    rsa_jwk, ec_jwk = public_jwk(rsa_key, "r"), public_jwk(ec_key, "e")
    assert SigningKey(rsa_jwk).accepts("RS256")
    assert SigningKey(rsa_jwk).accepts("PS256")
    assert not SigningKey(rsa_jwk).accepts("ES256")
    assert not SigningKey(rsa_jwk).accepts("HS256")
    assert SigningKey(ec_jwk).accepts("ES256")
    assert not SigningKey(ec_jwk).accepts("ES384")  # P-256 key, P-384 algorithm
    assert not SigningKey(ec_jwk).accepts("RS256")
    assert not SigningKey({**rsa_jwk, "alg": "RS256"}).accepts("PS256")  # `alg` pins the key


async def test_expired_token_is_rejected(verifier: JwtVerifier, rsa_key: RsaKey) -> None:
    now = int(time.time())
    # Leeway is 30 s: ten seconds past `exp` still passes, two minutes does not.
    assert await verifier.verify(sign(rsa_key, claims(exp=now - 10)))
    assert await rejected(verifier, sign(rsa_key, claims(exp=now - 120))) == "token expired"


async def test_token_without_exp_is_rejected(verifier: JwtVerifier, rsa_key: RsaKey) -> None:
    assert await rejected(verifier, sign(rsa_key, claims(exp=DROP))) == (
        "token lacks the exp claim"
    )


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_token_not_yet_valid_is_rejected(
    verifier: JwtVerifier, rsa_key: RsaKey, claim: str
) -> None:
    now = int(time.time())
    assert await verifier.verify(sign(rsa_key, claims(**{claim: now + 10})))
    token = sign(rsa_key, claims(**{claim: now + 120}))
    assert await rejected(verifier, token) == "token not yet valid"


async def test_wrong_audience_is_rejected(verifier: JwtVerifier, rsa_key: RsaKey) -> None:
    assert await verifier.verify(sign(rsa_key, claims(aud=["other-api", AUDIENCE])))
    token = sign(rsa_key, claims(aud="other-api"))
    assert await rejected(verifier, token) == "token audience not accepted"


async def test_missing_audience_is_rejected_when_configured(
    verifier: JwtVerifier, rsa_key: RsaKey
) -> None:
    assert await rejected(verifier, sign(rsa_key, claims(aud=DROP))) == (
        "token lacks the aud claim"
    )


async def test_audience_is_not_checked_when_none_is_configured(
    idp: JwksServer, clock: FakeClock, rsa_key: RsaKey
) -> None:
    verifier = verifier_for(idp, clock, audience=[])
    assert await verifier.verify(sign(rsa_key, claims(aud="any-api")))
    assert await verifier.verify(sign(rsa_key, claims(aud=DROP)))


async def test_wrong_issuer_is_rejected(verifier: JwtVerifier, rsa_key: RsaKey) -> None:
    token = sign(rsa_key, claims(iss="https://evil.test/"))
    assert await rejected(verifier, token) == "token issuer not accepted"
    assert await rejected(verifier, sign(rsa_key, claims(iss=DROP))) == (
        "token lacks the iss claim"
    )


async def test_token_signed_by_another_key_is_rejected(
    verifier: JwtVerifier, attacker_key: RsaKey
) -> None:
    assert await rejected(verifier, sign(attacker_key)) == "invalid token signature"


async def test_unknown_kid_is_rejected(
    verifier: JwtVerifier, rsa_key: RsaKey, attacker_key: RsaKey
) -> None:
    assert await rejected(verifier, sign(attacker_key, kid="attacker")) == UNKNOWN_KEY
    assert await rejected(verifier, sign(rsa_key, kid="rsa-2")) == UNKNOWN_KEY


async def test_token_without_kid_is_rejected(verifier: JwtVerifier, rsa_key: RsaKey) -> None:
    token = jwt.encode(claims(), rsa_key, "RS256")
    assert await rejected(verifier, token) == "token has no key id"


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
async def test_header_naming_its_own_key_is_rejected(
    verifier: JwtVerifier, rsa_key: RsaKey, attacker_key: RsaKey, header: str
) -> None:
    pointers: dict[str, Any] = {
        "jku": "https://evil.test/jwks.json",
        "x5u": "https://evil.test/cert.pem",
        "jwk": public_jwk(attacker_key, "rsa-1"),
        "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
    }
    pointer = pointers[header]
    # Signed by the real key: the header alone is the reason for refusal.
    token = sign(rsa_key, **{header: pointer})
    assert await rejected(verifier, token) == "token names its own key"
    assert await rejected(verifier, sign(attacker_key, **{header: pointer})) == (
        "token names its own key"
    )


@pytest.mark.parametrize(
    ("headers", "extra_claims"),
    [
        ({"typ": "id+jwt"}, {}),
        ({"typ": "application/logout+jwt"}, {}),
        ({}, {"token_use": "id"}),
        ({}, {"typ": "ID"}),  # Keycloak ID token
        ({}, {"nonce": "n-0S6_WzA2Mj"}),
        ({}, {"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}),
        ({"typ": "JWT"}, {"c_hash": "LDktKdoQak3Pk0cnXxCltA"}),
    ],
    ids=[
        "typ-id+jwt",
        "typ-logout",
        "token_use-id",
        "keycloak-typ-ID",
        "nonce",
        "at_hash",
        "c_hash",
    ],
)
async def test_id_token_used_as_access_token_is_rejected(
    verifier: JwtVerifier, rsa_key: RsaKey, headers: dict[str, str], extra_claims: dict[str, str]
) -> None:
    token = sign(rsa_key, claims(**extra_claims), **headers)
    assert await rejected(verifier, token) == NOT_ACCESS_TOKEN


@pytest.mark.parametrize(
    ("headers", "extra_claims"),
    [
        ({"typ": "at+jwt"}, {"nonce": "n"}),
        ({"typ": "application/at+JWT"}, {}),
        ({}, {"token_use": "access", "nonce": "n"}),
        ({}, {"typ": "Bearer", "nonce": "n"}),  # Keycloak access token carrying the login nonce
    ],
    ids=["at+jwt", "media-type", "token_use-access", "keycloak-bearer"],
)
async def test_declared_access_tokens_are_accepted(
    verifier: JwtVerifier, rsa_key: RsaKey, headers: dict[str, str], extra_claims: dict[str, str]
) -> None:
    assert await verifier.verify(sign(rsa_key, claims(**extra_claims), **headers))


async def test_required_token_use_must_be_present(
    idp: JwksServer, clock: FakeClock, rsa_key: RsaKey
) -> None:
    verifier = verifier_for(idp, clock, required_token_use="access")
    assert await verifier.verify(sign(rsa_key, claims(token_use="access")))
    assert await rejected(verifier, sign(rsa_key)) == NOT_ACCESS_TOKEN


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 20_000])
async def test_malformed_tokens_are_rejected(verifier: JwtVerifier, token: str) -> None:
    assert await rejected(verifier, token) == "invalid token"


# --- the key set ---------------------------------------------------------------------------


async def test_jwks_is_cached_between_verifications(
    verifier: JwtVerifier, idp: JwksServer, clock: FakeClock, rsa_key: RsaKey
) -> None:
    await verifier.verify(sign(rsa_key))
    clock.advance(CACHE_SECONDS - 1)
    await verifier.verify(sign(rsa_key))
    assert idp.fetches == 1
    clock.advance(2)  # past the cache lifetime: the set is fetched again
    await verifier.verify(sign(rsa_key))
    assert idp.fetches == 2


async def test_concurrent_verifications_share_one_fetch(
    verifier: JwtVerifier, idp: JwksServer, rsa_key: RsaKey
) -> None:
    token = sign(rsa_key)
    principals = await asyncio.gather(*(verifier.verify(token) for _ in range(20)))
    assert {p.identity for p in principals} == {"user-1"}
    assert idp.fetches == 1


async def test_unknown_kid_refetches_at_most_once_per_window(
    verifier: JwtVerifier, idp: JwksServer, clock: FakeClock, rsa_key: RsaKey
) -> None:
    await verifier.verify(sign(rsa_key))
    clock.advance(REFETCH_SECONDS)
    for _ in range(5):
        assert await rejected(verifier, sign(rsa_key, kid="forged")) == UNKNOWN_KEY
    assert idp.fetches == 2  # the first unknown kid refetched, the next four did not

    # The IdP rotates: once the window has passed, the new key is found by one refetch.
    rotated = ec.generate_private_key(ec.SECP256R1())
    idp.keys = [*idp.keys, public_jwk(rotated, "ec-2")]
    new_token = sign(rotated, kid="ec-2", alg="ES256")
    assert await rejected(verifier, new_token) == UNKNOWN_KEY
    clock.advance(REFETCH_SECONDS)
    assert (await verifier.verify(new_token)).identity == "user-1"
    assert idp.fetches == 3


async def test_jwks_from_a_file(tmp_path: Path, rsa_key: RsaKey, ec_key: EcKey) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(rsa_key, "rsa-1")]}))
    verifier = JwtVerifier(settings(jwks_url=None, jwks_file=path))
    assert (await verifier.verify(sign(rsa_key))).tenant_id == "acme"
    assert await rejected(verifier, sign(ec_key, kid="ec-1", alg="ES256")) == UNKNOWN_KEY


def test_unreadable_jwks_file_fails_at_startup(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot load the JWKS file"):
        JwtVerifier(settings(jwks_url=None, jwks_file=path))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_idp_down_is_an_authentication_error(rsa_key: RsaKey) -> None:
    verifier = JwtVerifier(settings(jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json"))
    assert await rejected(verifier, sign(rsa_key)) == KEYS_UNAVAILABLE


async def test_failing_idp_is_not_retried_within_the_window(
    verifier: JwtVerifier, idp: JwksServer, clock: FakeClock, rsa_key: RsaKey
) -> None:
    idp.status = 503
    assert await rejected(verifier, sign(rsa_key)) == KEYS_UNAVAILABLE
    assert await rejected(verifier, sign(rsa_key)) == KEYS_UNAVAILABLE
    assert idp.fetches == 1
    idp.status = 200
    clock.advance(REFETCH_SECONDS)
    assert await verifier.verify(sign(rsa_key))
    assert idp.fetches == 2


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://idp.example.com/jwks", True),
        ("http://127.0.0.1:8080/jwks", True),
        ("http://[::1]/jwks", True),
        ("http://localhost/jwks", True),
        ("http://idp.example.com/jwks", False),
        ("http://10.0.0.5/jwks", False),
        ("ftp://idp.example.com/jwks", False),
        ("https:///jwks", False),
    ],
)
def test_jwks_url_must_be_https_unless_loopback(url: str, allowed: bool) -> None:
    if allowed:
        check_jwks_url(url)
    else:
        with pytest.raises(ValueError, match="https"):
            check_jwks_url(url)


def test_jwks_keeps_only_public_signing_keys(rsa_key: RsaKey, ec_key: EcKey) -> None:
    private_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key))
    document = {
        "keys": [
            public_jwk(rsa_key, "good"),
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            {**private_jwk, "kid": "leaked"},
            {**public_jwk(ec_key, "enc"), "use": "enc"},
            {k: v for k, v in public_jwk(ec_key, "x").items() if k != "kid"},
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        ]
    }
    assert set(parse_jwks(document)) == {"good"}
    with pytest.raises(JwksError):
        parse_jwks({"keys": document["keys"][1:]})


@pytest.mark.parametrize(
    "overrides",
    [
        {"jwks_url": None},
        {"jwks_file": "/etc/jwks.json"},
        {"default_role": "superuser"},
        {"jwks_url": "http://idp.example.com/jwks"},
    ],
)
def test_unsafe_or_incomplete_settings_fail_at_startup(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JwtVerifier(settings(**overrides))
