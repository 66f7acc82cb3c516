"""Issue 4 end to end against a live server (uvicorn on a loopback port) with authlib
as the relying party: discovery, authorize, hosted login and consent, token, ID
token validation, UserInfo, refresh, revocation and RP-initiated logout; and two
apps signed in to from one browser through discovery alone, with separate
sessions and separate identities."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from oneauth.apps.models import AppRecord
from oneauth.settings import Settings

from ._rp import RelyingParty
from ._support import PASSWORD, LiveServer, form, query, register

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (its import adds an "always" filter; undone on exit)

    warnings.simplefilter("ignore", DeprecationWarning)  # authlib: httpx -> httpx2 notice
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oidc.core import CodeIDToken


def signup(base_url: str, app_id: str, email: str) -> str:
    response = httpx.post(
        f"{base_url}/apps/{app_id}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    sub: str = response.json()["user"]["id"]
    return sub


def drive(
    browser: httpx.Client, start: str, email: str, *, stop_at: str | None = None
) -> tuple[httpx.Response, list[str]]:
    """Follow redirects like a browser, filling the login and consent forms.

    Returns the last response (a redirect to ``stop_at``, or the first page that
    is not one of ours) and the kinds of pages shown on the way.
    """
    seen: list[str] = []
    response = browser.get(start)
    for _ in range(12):
        if response.is_redirect:
            location = response.headers["location"]
            assert response.status_code in (302, 303), response.status_code
            if stop_at is not None and location.startswith(stop_at):
                return response, seen
            response = browser.get(location)
            continue
        if "text/html" not in response.headers.get("content-type", ""):
            return response, seen
        assert response.status_code == 200, response.text
        page = form(response.text)
        data = dict(page.fields)
        if "password" in data:
            seen.append("login")
            data.update(email=email, password=PASSWORD)
        else:
            seen.append("consent")
            data["decision"] = "allow"
        response = browser.post(page.action, data=data)
    raise AssertionError("too many steps")


def test_authlib_client_full_flow(
    live_op: LiveServer, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision(name="Live Shop")
    issuer = f"{live_op.base_url}/apps/{app.app_id}"
    sub = signup(live_op.base_url, app.app_id, "live@example.com")
    # A native (public) client on a loopback redirect: PKCE only, any port (RFC 8252 7.3).
    client_id, _ = register(
        settings,
        app,
        redirect_uris=("http://127.0.0.1/callback",),
        post_logout=("http://127.0.0.1:9/signed-out",),
    )
    redirect_uri = "http://127.0.0.1:53117/callback"

    metadata = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    assert metadata["issuer"] == issuer
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "end_session_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "jwks_uri",
    ):
        assert metadata[name].startswith(issuer + "/"), name
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["authorization_response_iss_parameter_supported"] is True

    rp = OAuth2Client(
        client_id=client_id,
        scope="openid email profile offline_access",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier, nonce = generate_token(48), generate_token(20)
    uri, state = rp.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    with httpx.Client() as browser:
        final, seen = drive(browser, uri, "live@example.com", stop_at=redirect_uri)
        assert seen == ["login", "consent"]
        callback = final.headers["location"]
        result = query(callback)
        assert result["state"] == state
        assert result["iss"] == issuer  # RFC 9207

        token: dict[str, Any] = rp.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=verifier,
        )
        assert token["token_type"] == "Bearer"
        assert {"access_token", "refresh_token", "id_token"} <= token.keys()

        # The ID token, validated the way authlib's OIDC client does it.
        keys = KeySet.import_key_set(httpx.get(metadata["jwks_uri"]).json())
        decoded = jwt.decode(
            token["id_token"], keys, algorithms=metadata["id_token_signing_alg_values_supported"]
        )
        assert decoded.header["typ"] == "JWT"
        assert decoded.header["alg"] == "RS256"
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"essential": True, "value": issuer}},
            {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
        )
        claims.validate()  # iss, aud, exp, iat, nonce, at_hash, azp, auth_time
        assert claims["sub"] == sub
        assert claims["aud"] == client_id
        assert claims["amr"] == ["pwd"]
        assert claims["sid"]
        assert claims["email"] == "live@example.com"

        info = rp.get(metadata["userinfo_endpoint"])
        assert info.status_code == 200, info.text
        assert info.json()["sub"] == sub
        assert info.json()["email"] == "live@example.com"
        assert info.json()["email_verified"] is False

        first_refresh = token["refresh_token"]
        refreshed = rp.refresh_token(metadata["token_endpoint"], refresh_token=first_refresh)
        assert refreshed["refresh_token"] != first_refresh
        assert rp.get(metadata["userinfo_endpoint"]).status_code == 200

        revoked = rp.revoke_token(
            metadata["revocation_endpoint"],
            token=refreshed["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200
        after = rp.get(metadata["userinfo_endpoint"])
        assert after.status_code == 401  # the session behind the access token ended
        assert 'error="invalid_token"' in after.headers["www-authenticate"]

        # RP-initiated logout with id_token_hint: signed out without a question.
        done = browser.get(
            metadata["end_session_endpoint"],
            params={
                "id_token_hint": token["id_token"],
                "post_logout_redirect_uri": "http://127.0.0.1:9/signed-out",
                "state": "bye-1",
            },
        )
        assert done.status_code == 302
        assert done.headers["location"] == "http://127.0.0.1:9/signed-out?state=bye-1"
        # The browser session is gone: authorize shows the login page again.
        again = browser.get(uri)
        assert again.status_code == 200
        assert 'name="password"' in again.text


@pytest.mark.parametrize("confidential", [True])
def test_two_apps_through_discovery_alone(
    live_op: LiveServer,
    relying_party: tuple[RelyingParty, LiveServer],
    provision: Callable[..., AppRecord],
    settings: Settings,
    confidential: bool,
) -> None:
    rp, rp_server = relying_party
    shop, forum = provision(name="Shop"), provision(name="Forum")
    email = "same.person@example.com"
    subs = {}
    for label, app in (("shop", shop), ("forum", forum)):
        subs[label] = signup(live_op.base_url, app.app_id, email)
        name = f"{label}-{app.app_id}"
        client_id, secret = register(
            settings,
            app,
            kind="confidential",
            redirect_uris=(rp.redirect_uri(name),),
            post_logout=(rp.post_logout_uri(name),),
            name=f"{label} web",
        )
        assert secret is not None
        rp.register(name, f"{live_op.base_url}/apps/{app.app_id}", client_id, secret)
    assert subs["shop"] != subs["forum"]  # one email, two unrelated identities
    shop_name, forum_name = f"shop-{shop.app_id}", f"forum-{forum.app_id}"

    with httpx.Client() as browser:
        first, seen = drive(browser, f"{rp_server.base_url}/login/{shop_name}", email)
        assert first.status_code == 200, first.text
        assert seen == ["login", "consent"]
        body = first.json()
        assert body["id_token_claims"]["iss"] == f"{live_op.base_url}/apps/{shop.app_id}"
        assert body["id_token_claims"]["sub"] == subs["shop"]
        assert body["userinfo"]["sub"] == subs["shop"]
        assert body["userinfo"]["email"] == email

        # Signed in to the shop, the forum still asks: no accidental SSO.
        second, seen = drive(browser, f"{rp_server.base_url}/login/{forum_name}", email)
        assert seen == ["login", "consent"]
        assert second.json()["id_token_claims"]["sub"] == subs["forum"]
        assert second.json()["id_token_claims"]["iss"].endswith(f"/apps/{forum.app_id}")
        cookies = {(c.name, c.path) for c in browser.cookies.jar if c.name.startswith("oneauth")}
        assert (f"oneauth_session_{shop.app_id}", f"/apps/{shop.app_id}") in cookies
        assert (f"oneauth_session_{forum.app_id}", f"/apps/{forum.app_id}") in cookies

        # Each app's own session signs in again without a page (consent remembered).
        again, seen = drive(browser, f"{rp_server.base_url}/login/{shop_name}", email)
        assert seen == []
        assert again.json()["id_token_claims"]["sub"] == subs["shop"]

        # RP-initiated logout at the shop (authlib sends id_token_hint and state) ...
        out, _ = drive(browser, f"{rp_server.base_url}/logout/{shop_name}", email)
        assert out.status_code == 200
        assert out.text == "signed out at the relying party"
        # ... ends the shop's session only.
        _, seen = drive(browser, f"{rp_server.base_url}/login/{shop_name}", email)
        assert seen == ["login"]
        _, seen = drive(browser, f"{rp_server.base_url}/login/{forum_name}", email)
        assert seen == []
