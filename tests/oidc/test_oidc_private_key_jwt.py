"""private_key_jwt client authentication (RFC 7523 section 2.2 and 3, OIDC Core 9)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from jwcrypto import jwk, jwt

from oneauth.apps.models import AppRecord
from oneauth.oauth import clients
from oneauth.settings import Settings

from ._support import exchange, register, sign_in, signup

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def keypair(kid: str = "k1") -> tuple[jwk.JWK, dict[str, Any]]:
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)
    return key, {"keys": [json.loads(key.export_public())]}


def assertion(client_id: str, aud: str, key: jwk.JWK, *, alg: str = "ES256", **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 60,
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    token = jwt.JWT(header={"alg": alg, "kid": key.kid}, claims=claims)
    token.make_signed_token(key)
    value: str = token.serialize()
    return value


def cc_form(value: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": value,
        **extra,
    }


@pytest.fixture
def keyed_app(
    provision: Callable[..., AppRecord], settings: Settings
) -> tuple[AppRecord, str, jwk.JWK, str]:
    app = provision()
    key, public = keypair()
    client_id, secret = register(
        settings,
        app,
        kind="confidential",
        auth_method="private_key_jwt",
        jwks=public,
        grants=("authorization_code", "refresh_token", "client_credentials"),
        scopes=("openid", "email", "orders:read"),
    )
    assert secret is None  # nothing to leak: only the public key is stored
    return app, client_id, key, settings.issuer_for(app.app_id)


async def test_code_flow_and_client_credentials_with_a_signed_assertion(
    keyed_app: tuple[AppRecord, str, jwk.JWK, str],
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
) -> None:
    app, client_id, key, issuer = keyed_app
    doc = (await client.get(f"/apps/{app.app_id}/.well-known/openid-configuration")).json()
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert "ES256" in doc["token_endpoint_auth_signing_alg_values_supported"]
    await signup(client, app.app_id, "keyed@example.com")
    flow = await sign_in(browser, app.app_id, client_id, "keyed@example.com", scope="openid email")
    token_url = f"{issuer}/oauth/token"
    response = await browser.post(
        f"/apps/{app.app_id}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": flow.params["redirect_uri"],
            "code_verifier": flow.verifier,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(client_id, token_url, key),
        },
    )
    assert response.status_code == 200, response.text
    assert "id_token" in response.json()

    # aud may be the issuer too; the assertion names the client, no client_id needed.
    once = assertion(client_id, issuer, key)
    first = await client.post(f"/apps/{app.app_id}/oauth/token", data=cc_form(once))
    assert first.status_code == 200, first.text
    replay = await client.post(f"/apps/{app.app_id}/oauth/token", data=cc_form(once))
    assert replay.status_code == 401  # jti accepted once
    assert replay.json()["error"] == "invalid_client"
    # Introspection accepts its own URL as audience.
    seen = await client.post(
        f"/apps/{app.app_id}/oauth/introspect",
        data={
            "token": first.json()["access_token"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(client_id, f"{issuer}/oauth/introspect", key),
        },
    )
    assert seen.json()["active"] is True


async def test_bad_assertions_are_refused(
    keyed_app: tuple[AppRecord, str, jwk.JWK, str], client: httpx.AsyncClient
) -> None:
    app, client_id, key, issuer = keyed_app
    url = f"/apps/{app.app_id}/oauth/token"
    aud = f"{issuer}/oauth/token"
    other_key, _ = keypair("k1")  # same kid, different key
    now = int(time.time())
    hmac_key = jwk.JWK.generate(kty="oct", size=256, kid="k1")
    bad = {
        "other key": assertion(client_id, aud, other_key),
        "expired": assertion(client_id, aud, key, exp=now - 120),
        "no exp": assertion(client_id, aud, key, exp=None),
        "lives too long": assertion(client_id, aud, key, exp=now + 3600),
        "another audience": assertion(client_id, "https://elsewhere.example/token", key),
        "iss is not the client": assertion(client_id, aud, key, iss="cl_someoneelse123"),
        "no jti": assertion(client_id, aud, key, jti=None),
        "future nbf": assertion(client_id, aud, key, nbf=now + 600),
        "hmac": assertion(client_id, aud, hmac_key, alg="HS256"),
        "garbage": "a.b.c",
    }
    for reason, value in bad.items():
        response = await client.post(url, data=cc_form(value, client_id=client_id))
        assert response.status_code == 401, reason
        assert response.json()["error"] == "invalid_client", reason
    wrong_type = await client.post(
        url, data={**cc_form(assertion(client_id, aud, key)), "client_assertion_type": "jwt"}
    )
    assert wrong_type.json()["error"] == "invalid_request"
    two_methods = await client.post(
        url, data=cc_form(assertion(client_id, aud, key)), auth=(client_id, "x")
    )
    assert two_methods.json()["error"] == "invalid_request"
    # A key client cannot fall back to a secret, nor to naming itself.
    assert (await client.post(url, data={"grant_type": "client_credentials"},
                              auth=(client_id, "ocs_guess"))).status_code == 401  # fmt: skip
    named = await client.post(
        url, data={"grant_type": "client_credentials", "client_id": client_id}
    )
    assert named.status_code == 401


async def test_an_assertion_for_app_a_is_refused_at_app_b(
    keyed_app: tuple[AppRecord, str, jwk.JWK, str],
    provision: Callable[..., AppRecord],
    settings: Settings,
    client: httpx.AsyncClient,
) -> None:
    _, client_a, key, issuer_a = keyed_app
    app_b = provision()
    # The same key registered for a client of app B (a careless developer).
    client_b, _ = register(
        settings,
        app_b,
        kind="confidential",
        auth_method="private_key_jwt",
        jwks={"keys": [json.loads(key.export_public())]},
        grants=("client_credentials",),
        scopes=("orders:read",),
    )
    url_b = f"/apps/{app_b.app_id}/oauth/token"
    # A's client id is unknown at B; B's client with an assertion aimed at A is refused.
    at_b = await client.post(
        url_b, data=cc_form(assertion(client_a, f"{issuer_a}/oauth/token", key))
    )
    assert at_b.status_code == 401
    aimed_at_a = assertion(client_b, f"{issuer_a}/oauth/token", key)
    assert (await client.post(url_b, data=cc_form(aimed_at_a))).status_code == 401
    issuer_b = settings.issuer_for(app_b.app_id)
    ok = await client.post(url_b, data=cc_form(assertion(client_b, f"{issuer_b}/oauth/token", key)))
    assert ok.status_code == 200


def test_registration_takes_public_keys_only() -> None:
    key, public = keypair()
    spec = clients.ClientSpec(
        name="k",
        kind="confidential",
        grant_types=frozenset({"client_credentials"}),
        scopes=frozenset({"x"}),
        auth_method="private_key_jwt",
        jwks=public,
    )
    assert spec.validated().jwks == public
    private = {"keys": [json.loads(key.export_private())]}
    for jwks, message in (
        (private, "public keys only"),
        (None, "needs the client's public JWK Set"),
        ({"keys": []}, "1 to 10 keys"),
        ({"keys": [{**public["keys"][0], "kid": ""}]}, "distinct kid"),
        ({"keys": [{"kty": "oct", "k": "AAAA", "kid": "x"}]}, "RSA, EC or OKP"),
    ):
        with pytest.raises(clients.ClientError, match=message):
            clients.ClientSpec(**{**spec.__dict__, "jwks": jwks}).validated()
    with pytest.raises(clients.ClientError, match="needs the client's public JWK Set"):
        clients.ClientSpec(**{**spec.__dict__, "auth_method": "client_secret_basic"}).validated()


async def test_a_keyed_client_exchanges_like_any_other(
    keyed_app: tuple[AppRecord, str, jwk.JWK, str], browser: httpx.AsyncClient
) -> None:
    app, client_id, _, _ = keyed_app
    await signup(browser, app.app_id, "other@example.com")
    flow = await sign_in(browser, app.app_id, client_id, "other@example.com", scope="openid")
    # Without any client authentication the code is not redeemable.
    refused = await exchange(browser, app.app_id, client_id, flow.code, flow.verifier)
    assert refused.status_code == 401
