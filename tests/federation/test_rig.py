"""The federation rig's upstreams are real servers that speak their protocols."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import pytest

from federation.rig.faults import OMIT, Faults, FaultyOP, HangServer, closed_port
from federation.rig.github import GitHubStandIn
from federation.rig.node_op import Account, UpstreamOP
from federation.rig.oneauth_app import OneauthUpstream
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


def test_oidc_provider_conform_keeps_claims_to_userinfo(upstream_op_conform: UpstreamOP) -> None:
    op = upstream_op_conform
    client = op.register_client([CB])
    verifier, challenge = pkce_pair()
    url = authorize_url(op.authorization_endpoint, client.client_id, CB, challenge=challenge)
    with httpx.Client() as http:
        code = query(op.sign_in_sync(http, url, Account.new("c@upstream.example")))["code"]
        token = http.post(
            op.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CB,
                "code_verifier": verifier,
            },
            auth=(client.client_id, client.client_secret or ""),
        ).json()
        info = http.get(
            op.userinfo_endpoint, headers={"authorization": f"Bearer {token['access_token']}"}
        ).json()
    claims = verify_id_token(
        token["id_token"], op.jwks_uri, issuer=op.issuer, audience=client.client_id, nonce="n-rig"
    )
    assert "email" not in claims
    assert "email_verified" not in claims
    assert info["email"] == "c@upstream.example"
    assert info["email_verified"] is True


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


def test_oidc_provider_client_update_and_cancel(upstream_op: UpstreamOP) -> None:
    """Register first, learn the callback URL later (RFC 7592); Cancel at the login
    page comes back as access_denied with state and iss."""
    client = upstream_op.register_client(["http://127.0.0.1:9/placeholder"])
    client = upstream_op.update_redirect_uris(client, [CB])
    url = authorize_url(
        upstream_op.authorization_endpoint, client.client_id, CB, challenge=pkce_pair()[1]
    )
    with httpx.Client() as http:
        back = query(upstream_op.cancel_sync(http, url))
        assert back["error"] == "access_denied"
        assert back["state"] == "st-rig"
        assert back["iss"] == upstream_op.issuer
        code = query(upstream_op.sign_in_sync(http, url, upstream_op.account()))["code"]
    assert code


# ---- the GitHub-style stand-in -----------------------------------------------------


def test_github_stand_in_web_flow_and_user_api(github: GitHubStandIn) -> None:
    app = github.register_app(CB)
    user = github.add_user("octo@users.example", name="Octo Cat")
    verifier, challenge = pkce_pair()
    start = f"{github.authorize_url}?" + urlencode(
        {
            "client_id": app.client_id,
            "redirect_uri": CB,
            "scope": "read:user user:email",
            "state": "gh-state",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with httpx.Client() as http:
        back = query(github.sign_in_sync(http, start, user))
        assert back["state"] == "gh-state"
        token = http.post(
            github.token_url,
            data={
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "code": back["code"],
                "redirect_uri": CB,
                "code_verifier": verifier,
            },
            headers={"accept": "application/json"},
        )
        assert token.status_code == 200
        body = token.json()
        assert body["token_type"] == "bearer"
        assert body["scope"] == "read:user,user:email"
        auth = {"authorization": f"Bearer {body['access_token']}"}
        me = http.get(f"{github.api_base}/user", headers=auth)
        assert me.status_code == 200
        assert me.json()["id"] == user.id
        assert me.json()["login"] == user.login
        assert me.json()["email"] is None  # no public email
        emails = http.get(f"{github.api_base}/user/emails", headers=auth)
        assert emails.json() == [
            {
                "email": "octo@users.example",
                "primary": True,
                "verified": True,
                "visibility": "private",
            }
        ]
        # The code was single use; GitHub answers errors with HTTP 200.
        again = http.post(
            github.token_url,
            data={
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "code": back["code"],
                "code_verifier": verifier,
            },
            headers={"accept": "application/json"},
        )
        assert again.status_code == 200
        assert again.json()["error"] == "bad_verification_code"
        bad = http.get(f"{github.api_base}/user", headers={"authorization": "Bearer gho_nope"})
        assert bad.status_code == 401
        assert bad.json()["message"] == "Bad credentials"


def test_github_stand_in_redirect_mismatch_denial_and_scope(github: GitHubStandIn) -> None:
    app = github.register_app(CB)
    user = github.add_user("unverified@users.example", verified=False)
    with httpx.Client() as http:
        other = http.get(
            github.authorize_url,
            params={"client_id": app.client_id, "redirect_uri": f"{CB}x", "state": "s1"},
        )
        assert other.status_code == 302
        assert other.headers["location"].startswith(f"{CB}?")  # the registered one only
        assert query(other.headers["location"])["error"] == "redirect_uri_mismatch"
        start = f"{github.authorize_url}?" + urlencode(
            {"client_id": app.client_id, "state": "s2", "scope": "read:user"}
        )
        denied = query(github.sign_in_sync(http, start, user, allow=False))
        assert denied == {
            "error": "access_denied",
            "error_description": "The user has denied your application access.",
            "state": "s2",
        }
        code = query(github.sign_in_sync(http, start, user))["code"]
        token = http.post(
            github.token_url,
            data={"client_id": app.client_id, "client_secret": app.client_secret, "code": code},
        )
        assert token.headers["content-type"].startswith("application/x-www-form-urlencoded")
        access = query(f"?{token.text}")["access_token"]
        emails = http.get(
            f"{github.base_url}/user/emails", headers={"authorization": f"token {access}"}
        )
        assert emails.status_code == 404  # read:user alone does not list emails
        wrong = http.post(
            github.token_url,
            data={"client_id": app.client_id, "client_secret": "nope", "code": "x"},
            headers={"accept": "application/json"},
        )
        assert wrong.json()["error"] == "incorrect_client_credentials"
        app.token_error = ("bad_verification_code", "The code passed is incorrect or expired.")
        code = query(github.sign_in_sync(http, start, user))["code"]
        failing = http.post(
            github.token_url,
            data={"client_id": app.client_id, "client_secret": app.client_secret, "code": code},
            headers={"accept": "application/json"},
        )
        assert failing.status_code == 200  # GitHub's way
        assert failing.json()["error"] == "bad_verification_code"


# ---- the faulty OP -----------------------------------------------------------------


def _faulty_flow(
    op: FaultyOP, faults: Faults | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    client = op.register_client([CB], faults)
    verifier, challenge = pkce_pair()
    url = authorize_url(op.authorization_endpoint, client.client_id, CB, challenge=challenge)
    with httpx.Client() as http:
        back = query(op.sign_in_sync(http, url, Account.new("f@upstream.example")))
        if "code" not in back:
            return back, {}
        token = http.post(
            op.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": CB,
                "code_verifier": verifier,
            },
            auth=(client.client_id, client.client_secret or ""),
        )
    return back, {"status": token.status_code, "client_id": client.client_id, **token.json()}


def _verify(op: FaultyOP, answer: dict[str, Any]) -> dict[str, Any]:
    return verify_id_token(
        answer["id_token"],
        op.jwks_uri,
        issuer=op.issuer,
        audience=answer["client_id"],
        nonce="n-rig",
    )


def test_faulty_op_is_correct_by_default(faulty_op: FaultyOP) -> None:
    back, answer = _faulty_flow(faulty_op)
    assert back["iss"] == faulty_op.issuer
    assert answer["status"] == 200
    claims = _verify(faulty_op, answer)
    assert claims["email"] == "f@upstream.example"
    assert claims["email_verified"] is True
    assert httpx.get(f"{faulty_op.issuer}/.well-known/openid-configuration").json()[
        "authorization_response_iss_parameter_supported"
    ]


@pytest.mark.parametrize(
    "faults",
    [
        Faults(signature="tampered"),
        Faults(signature="unknown_key"),
        Faults(signature="none"),
        Faults(id_token_nonce="n-other"),
        Faults(id_token_iss="http://127.0.0.1:1/evil"),
        Faults(id_token_aud="someone-else"),
        Faults(expired=True),
    ],
    ids=["tampered", "unknown_key", "alg_none", "nonce", "iss", "aud", "expired"],
)
def test_faulty_op_id_tokens_fail_verification(faulty_op: FaultyOP, faults: Faults) -> None:
    _back, answer = _faulty_flow(faulty_op, faults)
    assert answer["status"] == 200
    with pytest.raises(Exception):  # noqa: B017, PT011 (jwcrypto raises several types)
        _verify(faulty_op, answer)


def test_faulty_op_callback_and_endpoint_faults(faulty_op: FaultyOP) -> None:
    back, _ = _faulty_flow(faulty_op, Faults(callback_iss="http://127.0.0.1:1/evil"))
    assert back["iss"] == "http://127.0.0.1:1/evil"
    back, _ = _faulty_flow(faulty_op, Faults(callback_iss=OMIT))
    assert "iss" not in back
    back, answer = _faulty_flow(faulty_op, Faults(authorize_error=("access_denied", "no")))
    assert back["error"] == "access_denied"
    assert back["iss"] == faulty_op.issuer
    assert not answer
    _back, answer = _faulty_flow(faulty_op, Faults(token_error=(400, "invalid_grant", "used")))
    assert answer == {
        "status": 400,
        "client_id": answer["client_id"],
        "error": "invalid_grant",
        "error_description": "used",
    }


def test_faulty_op_rotates_keys_and_fails_discovery(faulty_op: FaultyOP) -> None:
    _back, before = _faulty_flow(faulty_op)
    old_kid = json.loads(base64.urlsafe_b64decode(before["id_token"].split(".")[0] + "=="))["kid"]
    faulty_op.rotate_keys()
    kids = {k["kid"] for k in httpx.get(faulty_op.jwks_uri).json()["keys"]}
    assert old_kid not in kids
    _back, after = _faulty_flow(faulty_op)
    assert _verify(faulty_op, after)["sub"]
    faulty_op.discovery_status = 503
    assert httpx.get(f"{faulty_op.issuer}/.well-known/openid-configuration").status_code == 503


async def test_faulty_op_signs_in_then_its_token_endpoint_hangs(
    faulty_op: FaultyOP, hang_server: HangServer
) -> None:
    faulty_op.discovery_overrides["token_endpoint"] = f"{hang_server.url}/token"
    async with httpx.AsyncClient() as http:
        discovery = (await http.get(f"{faulty_op.issuer}/.well-known/openid-configuration")).json()
        assert discovery["token_endpoint"] == f"{hang_server.url}/token"
        client = faulty_op.register_client([CB])
        url = authorize_url(
            discovery["authorization_endpoint"], client.client_id, CB, challenge=pkce_pair()[1]
        )
        back = query(await faulty_op.sign_in(http, url, Account.new()))
        with pytest.raises(httpx.ReadTimeout):
            await http.post(discovery["token_endpoint"], data={"code": back["code"]}, timeout=0.3)
    assert hang_server.accepted == 1
    assert hang_server.wait_closed(5)


def test_faulty_op_claims_split_between_responses(faulty_op: FaultyOP) -> None:
    """email_verified only in the ID token, another email only in userinfo: the
    Keycloak-class mix a downstream must not combine."""
    faults = Faults(
        id_token_omit=frozenset({"email"}),
        userinfo_omit=frozenset({"email_verified"}),
        userinfo_extra={"email": "victim@example.com"},
    )
    _back, answer = _faulty_flow(faulty_op, faults)
    claims = _verify(faulty_op, answer)
    assert "email" not in claims
    assert claims["email_verified"] is True
    info = httpx.get(
        f"{faulty_op.issuer}/userinfo",
        headers={"authorization": f"Bearer {answer['access_token']}"},
    ).json()
    assert info["email"] == "victim@example.com"
    assert "email_verified" not in info


# ---- hangs ---------------------------------------------------------------------------


def test_hang_server_times_out_and_sees_the_client_go(hang_server: HangServer) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{hang_server.url}/.well-known/openid-configuration", timeout=0.5)
    assert 0.4 < time.monotonic() - started < 3
    assert hang_server.accepted == 1
    assert hang_server.wait_closed(5)


async def test_trickle_server_defeats_a_read_timeout_alone(trickle_server: HangServer) -> None:
    """A byte every half second: httpx's 1 s read timeout never fires (it restarts
    with every read), so only a bound on the whole exchange ends the request."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=httpx.Timeout(1.0)) as http:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(http.get(f"{trickle_server.url}/x"), timeout=2.5)
    assert 2.4 < time.monotonic() - started < 4
    assert trickle_server.wait_closed(5)


def test_closed_port_refuses() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{closed_port()}/", timeout=2)


# ---- a second oneauth app as the upstream ---------------------------------------------


def test_oneauth_app_as_upstream(oneauth_upstream: OneauthUpstream) -> None:
    client = oneauth_upstream.register_client([CB])
    sub = oneauth_upstream.add_user("u-user@example.com")
    verifier, challenge = pkce_pair()
    url = authorize_url(
        oneauth_upstream.authorization_endpoint, client.client_id, CB, challenge=challenge
    )
    with httpx.Client() as http:
        back = query(oneauth_upstream.sign_in_sync(http, url, "u-user@example.com"))
        assert back["state"] == "st-rig"
        token = http.post(
            oneauth_upstream.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": CB,
                "code_verifier": verifier,
            },
            auth=(client.client_id, client.client_secret or ""),
        )
    assert token.status_code == 200, token.text
    claims = verify_id_token(
        token.json()["id_token"],
        oneauth_upstream.jwks_uri,
        issuer=oneauth_upstream.issuer,
        audience=client.client_id,
        nonce="n-rig",
    )
    assert claims["sub"] == sub
    assert claims["email"] == "u-user@example.com"
    assert claims["email_verified"] is True
