"""JWT mode end to end: a real server trusts a test IdP's JWKS; the SDK calls it with
bearer tokens, and tenants from the tokens keep data apart."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from langgraph_sdk import get_client

from tests.support.jwks_server import JwksServer
from tests.support.topology import Deployment, deploy

ISSUER = "https://idp.test/garrison"
AUDIENCE = "garrison-api"


class Idp:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]

    def token(self, tenant: str, sub: str, roles: list[str], **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
        body.update(tenant=tenant, sub=sub, roles=roles, **claims)
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def idp() -> Idp:
    return Idp()


@pytest.fixture(scope="module")
def server(idp: Idp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with JwksServer(idp.jwks) as jwks:
        env = {
            "GARRISON_AUTH_MODE": "jwt",
            "GARRISON_AUTH_JWKS_URL": jwks.url,
            "GARRISON_AUTH_ISSUER": ISSUER,
            "GARRISON_AUTH_AUDIENCE": json.dumps([AUDIENCE]),
        }
        data_dir: Path = tmp_path_factory.mktemp("jwt")
        with deploy("embedded", data_dir, env=env) as deployment:
            yield deployment


def test_missing_or_bad_tokens_get_401(server: Deployment, idp: Idp) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60, "tenant": "acme"},
        other,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    wrong_audience = idp.token("acme", "u1", ["admin"], aud="someone-else")
    for headers in (
        {},
        {"authorization": f"Bearer {forged}"},
        {"authorization": f"Bearer {wrong_audience}"},
    ):
        response = httpx.post(f"{server.url}/threads/search", json={}, headers=headers)
        assert response.status_code == 401, response.text
        assert set(response.json()) == {"detail"}


async def test_sdk_with_tokens_and_tenant_separation(server: Deployment, idp: Idp) -> None:
    alice = get_client(
        url=server.url,
        api_key=None,
        headers={"authorization": f"Bearer {idp.token('acme', 'alice', ['developer'])}"},
    )
    bob = get_client(
        url=server.url,
        api_key=None,
        headers={"authorization": f"Bearer {idp.token('globex', 'bob', ['developer'])}"},
    )
    try:
        thread = await alice.threads.create(metadata={"who": "alice"})
        await alice.runs.wait(thread["thread_id"], "echo", input={"messages": []})
        assert [t["thread_id"] for t in await alice.threads.search()] == [thread["thread_id"]]
        assert await bob.threads.search() == []
        with pytest.raises(httpx.HTTPStatusError) as denied:
            await bob.threads.get(thread["thread_id"])
        assert denied.value.response.status_code == 404
    finally:
        await alice.http.client.aclose()
        await bob.http.client.aclose()


def test_viewer_token_cannot_write(server: Deployment, idp: Idp) -> None:
    headers = {"authorization": f"Bearer {idp.token('acme', 'val', ['viewer'])}"}
    assert httpx.post(f"{server.url}/threads/search", json={}, headers=headers).status_code == 200
    assert httpx.post(f"{server.url}/threads", json={}, headers=headers).status_code == 403
