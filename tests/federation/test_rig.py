"""The federation rig's upstreams are real servers that speak their protocols."""

from __future__ import annotations

from typing import Literal

import httpx
import pytest

from federation.rig.node_op import Account, UpstreamOP
from federation.rig.protocol import authorize_url, pkce_pair, query, verify_id_token

CB = "http://127.0.0.1:9/federation/idp_rig/callback"  # never contacted: the test reads it


def test_oidc_provider_discovery(upstream_op: UpstreamOP) -> None:
    d = upstream_op.discovery
    assert d["issuer"] == upstream_op.issuer
    assert d["authorization_response_iss_parameter_supported"] is True
    assert d["code_challenge_methods_supported"] == ["S256"]
    assert {"RS256", "ES256"} <= set(d["id_token_signing_alg_values_supported"])
    assert "registration_endpoint" in d
    jwks = httpx.get(upstream_op.jwks_uri).json()["keys"]
    assert sorted(k["alg"] for k in jwks) == ["ES256", "RS256"]
    assert all("d" not in k for k in jwks)  # public halves only


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_oidc_provider_code_flow_with_pkce(
    upstream_op: UpstreamOP, alg: Literal["RS256", "ES256"]
) -> None:
    client = upstream_op.register_client([CB], id_token_signed_response_alg=alg)
    assert client.client_secret
    account = Account.new("ada@upstream.example", name="Ada Upstream")
    verifier, challenge = pkce_pair()
    url = authorize_url(
        upstream_op.authorization_endpoint, client.client_id, CB, challenge=challenge
    )
    with httpx.Client() as http:
        callback = upstream_op.sign_in_sync(http, url, account)
    assert callback.startswith(f"{CB}?")
    result = query(callback)
    assert result["state"] == "st-rig"
    assert result["iss"] == upstream_op.issuer  # RFC 9207
    token = httpx.post(
        upstream_op.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": CB,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.client_secret),
    )
    assert token.status_code == 200, token.text
    claims = verify_id_token(
        token.json()["id_token"],
        upstream_op.jwks_uri,
        issuer=upstream_op.issuer,
        audience=client.client_id,
        nonce="n-rig",
    )
    assert claims["sub"] == account.sub
    assert claims["email"] == "ada@upstream.example"
    assert claims["email_verified"] is True
    assert claims["name"] == "Ada Upstream"
    info = httpx.get(
        upstream_op.userinfo_endpoint,
        headers={"authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == account.sub


async def test_oidc_provider_async_sign_in_and_unverified_email(upstream_op: UpstreamOP) -> None:
    client = upstream_op.register_client([CB], token_endpoint_auth_method="client_secret_post")
    account = Account.new(email_verified=False)
    verifier, challenge = pkce_pair()
    url = authorize_url(
        upstream_op.authorization_endpoint, client.client_id, CB, challenge=challenge
    )
    async with httpx.AsyncClient() as http:
        result = query(await upstream_op.sign_in(http, url, account))
        token = await http.post(
            upstream_op.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": result["code"],
                "redirect_uri": CB,
                "code_verifier": verifier,
                "client_id": client.client_id,
                "client_secret": client.client_secret or "",
            },
        )
    assert token.status_code == 200, token.text
    claims = verify_id_token(
        token.json()["id_token"],
        upstream_op.jwks_uri,
        issuer=upstream_op.issuer,
        audience=client.client_id,
        nonce="n-rig",
    )
    assert claims["email_verified"] is False


def test_oidc_provider_refuses_what_it_should(upstream_op: UpstreamOP) -> None:
    """PKCE required, exact redirect URIs, the verifier checked: the OP is strict."""
    client = upstream_op.register_client([CB])
    account = upstream_op.account()
    with httpx.Client() as http:
        no_pkce = upstream_op.sign_in_sync(
            http,
            authorize_url(upstream_op.authorization_endpoint, client.client_id, CB, challenge=None),
            account,
        )
        assert query(no_pkce)["error"] == "invalid_request"
        other = http.get(
            authorize_url(
                upstream_op.authorization_endpoint,
                client.client_id,
                f"{CB}/more",
                challenge=pkce_pair()[1],
            )
        )
        assert other.status_code == 400  # not redirected anywhere
        assert "redirect_uri" in other.text
        _, challenge = pkce_pair()
        url = authorize_url(
            upstream_op.authorization_endpoint, client.client_id, CB, challenge=challenge
        )
        code = query(upstream_op.sign_in_sync(http, url, account))["code"]
    wrong = httpx.post(
        upstream_op.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CB,
            "code_verifier": pkce_pair()[0],
        },
        auth=(client.client_id, client.client_secret or ""),
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
