"""Per-app signing keys: sealed at rest (A2), published, rotated (T3)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from apiclient import confidential_client, login, signup
from oneauth.apps.models import AppRecord
from oneauth.secretbox import SecretBoxError
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.tokens.jwt import sign_jwt
from oneauth.tokens.keys import PRIVATE_JWK_MEMBERS, SigningKey
from oneauth.tokens.keystore import key_context
from oneauth.verifier import UnknownKey, Verifier
from test_tokens_api import bearer, jwt_parts


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


async def jwks_kids(client: httpx.AsyncClient, app_id: str) -> set[str]:
    response = await client.get(f"/apps/{app_id}/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    return {k["kid"] for k in response.json()["keys"]}


async def wait_for_kid(client: httpx.AsyncClient, app_id: str, kid: str, present: bool) -> None:
    for _ in range(100):  # NOTIFY reaches the key cache within milliseconds
        if (kid in await jwks_kids(client, app_id)) == present:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"kid {kid} never became {'present' if present else 'absent'}")


async def test_keys_are_sealed_at_rest(
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    a, b = provision(), provision()
    async with services.router.app(a.app_id) as conn:
        rows = await conn.fetch(
            "SELECT kid, alg, state, public_jwk, private_sealed FROM signing_keys"
        )
    assert {(r["alg"], r["state"]) for r in rows} == {
        ("ES256", "active"),
        ("ES256", "next"),
        ("RS256", "active"),
        ("RS256", "next"),
    }
    for row in rows:
        public = json.loads(row["public_jwk"])
        assert not PRIVATE_JWK_MEMBERS & public.keys()
        assert row["private_sealed"].startswith("v1.")
        assert '"d"' not in row["private_sealed"]
        plain = services.box.open(row["private_sealed"], context=key_context(a.app_id, row["kid"]))
        assert json.loads(plain)["kid"] == row["kid"]
        # Bound to the app: moved to another app (or purpose) it does not open.
        with pytest.raises(SecretBoxError):
            services.box.open(row["private_sealed"], context=key_context(b.app_id, row["kid"]))


async def test_discovery_and_jwks(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    issuer = settings.issuer_for(app.app_id)
    doc = (await client.get(f"/apps/{app.app_id}/.well-known/openid-configuration")).json()
    assert doc["issuer"] == issuer
    assert doc["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert doc["token_endpoint"] == f"{issuer}/oauth/token"
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    rfc8414 = await client.get(f"/.well-known/oauth-authorization-server/apps/{app.app_id}")
    assert rfc8414.json()["issuer"] == issuer
    assert (
        await client.get("/.well-known/oauth-authorization-server/apps/nope")
    ).status_code == 404
    keys = (await client.get(f"/apps/{app.app_id}/.well-known/jwks.json")).json()["keys"]
    assert len(keys) == 4
    for key in keys:
        assert key["use"] == "sig"
        assert not PRIVATE_JWK_MEMBERS & key.keys()
    other = provision()
    assert not await jwks_kids(client, app.app_id) & await jwks_kids(client, other.app_id)


async def test_rotation_end_to_end(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    service: Starlette,
) -> None:
    app = provision()
    issuer = settings.issuer_for(app.app_id)
    before = await signup(client, app.app_id, "rotation@example.com")
    old_kid = jwt_parts(before["access_token"])[0]["kid"]

    refused = cli(settings, "keys", "rotate", app.app_id)
    assert refused.returncode == 1
    assert "may not be in every cached JWKS yet" in refused.stderr

    rotated = cli(settings, "keys", "rotate", app.app_id, "--force", "--json")
    assert rotated.returncode == 0, rotated.stderr
    report = json.loads(rotated.stdout)
    assert old_kid in report["retired"]
    await wait_for_kid(client, app.app_id, report["published"][0], True)

    after = (await login(client, app.app_id, "rotation@example.com")).json()
    new_kid = jwt_parts(after["access_token"])[0]["kid"]
    assert new_kid != old_kid
    assert new_kid in report["activated"]
    # Normal rotation: what the old key signed stays valid until it expires.
    assert old_kid in await jwks_kids(client, app.app_id)
    for token in (before["access_token"], after["access_token"]):
        assert (
            await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(token))
        ).status_code == 200

    emergency = cli(settings, "keys", "rotate", app.app_id, "--emergency", "--json")
    assert emergency.returncode == 0, emergency.stderr
    assert new_kid in json.loads(emergency.stdout)["revoked"]
    await wait_for_kid(client, app.app_id, new_kid, False)
    # Everything the revoked key signed is refused: our endpoints and a fresh verifier.
    me = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(after["access_token"]))
    assert me.status_code == 401
    cid, secret = confidential_client(settings, app)
    seen = await client.post(
        f"/apps/{app.app_id}/oauth/introspect",
        data={"token": after["access_token"]},
        auth=(cid, secret),
    )
    assert seen.json() == {"active": False}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service)) as http:
        verifier = Verifier(issuer, f"{issuer}/api", app.app_id, async_http_client=http)
        with pytest.raises(UnknownKey):
            await verifier.averify(after["access_token"])
        fresh = (await login(client, app.app_id, "rotation@example.com")).json()
        claims = await verifier.averify(fresh["access_token"])
        assert claims.sub == before["user"]["id"]
    # The retired (not revoked) key from the first rotation is still published.
    assert old_kid in await jwks_kids(client, app.app_id)


async def test_id_tokens_are_not_access_tokens(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    tokens = await signup(client, app.app_id, "idtoken@example.com")
    claims: dict[str, Any] = jwt_parts(tokens["access_token"])[1]
    async with services.router.app(app.app_id) as conn:
        issuer = await services.issuer(app, conn)
    id_token = issuer.id_token(
        sub=claims["sub"],
        client_id=claims["client_id"],
        auth_time=claims["auth_time"],
        access_token=None,
        nonce="n",
        sid=claims["sid"],
        amr=["pwd"],
    )
    assert jwt_parts(id_token)[0]["typ"] == "JWT"
    me = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(id_token))
    assert me.status_code == 401
    assert "typ" in me.json()["detail"]


async def _sign_with(services: Services, app_id: str, kid: str, claims: dict[str, Any]) -> str:
    """An access token with ``claims`` signed by the app's key ``kid`` (e.g. a next key,
    which oneauth itself never signs with): what someone holding that key could make."""
    async with services.router.app(app_id) as conn:
        row = await conn.fetchrow(
            "SELECT alg, private_sealed FROM signing_keys WHERE kid = $1", kid
        )
    assert row is not None
    plain = services.box.open(row["private_sealed"], context=key_context(app_id, kid))
    return sign_jwt(SigningKey.from_private_json(plain, row["alg"]), claims, typ="at+jwt")


async def test_emergency_rotation_of_all_keys_revokes_next_and_retired_ones(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app, bystander = provision(), provision()
    email = "compromise@example.com"
    first = await signup(client, app.app_id, email)
    retired_kid = jwt_parts(first["access_token"])[0]["kid"]
    normal = cli(settings, "keys", "rotate", app.app_id, "--force", "--json")
    assert normal.returncode == 0, normal.stderr
    report = json.loads(normal.stdout)
    await wait_for_kid(client, app.app_id, report["published"][0], True)
    next_es256 = await _kids_of(services, app, "ES256")
    next_kid = next(k for k in report["published"] if k in next_es256)
    after = (await login(client, app.app_id, email)).json()
    active_kid = jwt_parts(after["access_token"])[0]["kid"]
    claims = jwt_parts(after["access_token"])[1]
    forged = await _sign_with(services, app.app_id, next_kid, claims)
    tokens = {
        "retired": first["access_token"],
        "active": after["access_token"],
        "next": forged,
    }
    # Before: all three verify (the next key is published so that verifiers have it).
    assert len({retired_kid, active_kid, next_kid}) == 3
    for name, token in tokens.items():
        me = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(token))
        assert me.status_code == 200, name
    before = await jwks_kids(client, app.app_id)
    untouched = await jwks_kids(client, bystander.app_id)

    refused = cli(settings, "keys", "rotate", app.app_id, "--all")
    assert refused.returncode == 1
    assert "--emergency" in refused.stderr
    done = cli(settings, "keys", "rotate", app.app_id, "--emergency", "--all", "--json")
    assert done.returncode == 0, done.stderr
    assert "emergency rotation" in done.stderr
    result = json.loads(done.stdout)
    assert set(result["revoked"]) == before  # every published key, next and retired included
    fresh = set(result["activated"]) | set(result["published"])
    assert not fresh & before
    await wait_for_kid(client, app.app_id, next_kid, False)
    assert await jwks_kids(client, app.app_id) == fresh
    for name, token in tokens.items():
        me = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(token))
        assert me.status_code == 401, name
    # A new key signs at once; the other app's keys are not touched.
    again = (await login(client, app.app_id, email)).json()
    assert jwt_parts(again["access_token"])[0]["kid"] in result["activated"]
    me = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(again["access_token"]))
    assert me.status_code == 200
    assert await jwks_kids(client, bystander.app_id) == untouched
    async with services.router.app(app.app_id) as conn:
        rows = await conn.fetch(
            "SELECT event, actor_type, details->>'mode' AS mode FROM audit_log"
            " WHERE event IN ('keys.rotate', 'keys.emergency_rotation') ORDER BY id"
        )
    assert [(r["event"], r["actor_type"], r["mode"]) for r in rows] == [
        ("keys.rotate", "operator", "normal"),
        ("keys.emergency_rotation", "operator", "emergency_all"),
    ]


async def _kids_of(services: Services, app: AppRecord, alg: str) -> set[str]:
    async with services.router.app(app.app_id) as conn:
        rows = await conn.fetch(
            "SELECT kid FROM signing_keys WHERE alg = $1 AND state = 'next'", alg
        )
    return {r["kid"] for r in rows}
