"""Pure pieces of the provider: PKCE, redirect URI matching, sealed requests,
branding validation, CSP, cookie attributes, client registration bounds."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from starlette.responses import Response

from oneauth.oauth import clients, pkce, redirect_uri
from oneauth.oauth.authorize import AuthorizationRequest
from oneauth.secretbox import SecretBox, generate_master_key
from oneauth.settings import Settings
from oneauth.web import browser_session
from oneauth.web.render import content_security_policy, stylesheet, valid_color, valid_logo_url


def test_pkce_s256_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce.s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.verify(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not pkce.verify(verifier[:-1] + "Y", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not pkce.verify(None, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    # A "plain" client sending the challenge itself as verifier does not pass.
    assert not pkce.verify(
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    assert not pkce.verify("short", pkce.s256("short"))  # < 43 characters
    assert not pkce.verify("x" * 129, pkce.s256("x" * 129))
    assert pkce.valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not pkce.valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c+")


REGISTERED = ("https://rp.example.com/cb", "https://rp.example.com/cb2?tenant=1")


@pytest.mark.parametrize(
    "presented",
    [
        "https://rp.example.com/cb/",
        "https://RP.example.com/cb",
        "https://rp.example.com/CB",
        "https://rp.example.com/cb?x=1",
        "https://rp.example.com/cb#frag",
        "https://rp.example.com/cb/..;/",
        "https://rp.example.com/cb/../cb",
        "https://rp.example.com@evil.example/cb",
        "https://evil.example@rp.example.com/cb",
        "https://rp.example.com:443/cb",
        "https://rp.example.com:8443/cb",
        "http://rp.example.com/cb",
        "https://rp.example.com/cb%2F",
        "https://rp.example.com/cb2",
        "https://rp.example.com/cb2?tenant=2",
        " https://rp.example.com/cb",
        "",
    ],
)
def test_redirect_uri_is_an_exact_string(presented: str) -> None:
    assert not redirect_uri.matches(REGISTERED, presented, native=False)
    assert not redirect_uri.matches(REGISTERED, presented, native=True)


def test_only_native_loopback_may_vary_its_port() -> None:
    registered = ("http://127.0.0.1/cb", "http://[::1]:8080/cb")
    assert redirect_uri.matches(registered, "http://127.0.0.1:51004/cb", native=True)
    assert redirect_uri.matches(registered, "http://127.0.0.1/cb", native=True)
    assert redirect_uri.matches(registered, "http://[::1]:3000/cb", native=True)
    assert not redirect_uri.matches(registered, "http://127.0.0.1:51004/cb", native=False)
    for bad in (
        "http://127.0.0.1:51004/cb/",
        "http://127.0.0.1:51004/CB",
        "http://127.0.0.1:51004/cb?x=1",
        "http://127.0.0.1:51004@evil.example/cb",
        "http://127.0.0.1.evil.example:51004/cb",
        "http://localhost:51004/cb",
        "https://127.0.0.1:51004/cb",
        "http://127.0.0.1:99999/cb",
        "http://[::1]:3000/cb#x",
    ):
        assert not redirect_uri.matches(registered, bad, native=True), bad


def test_origin_for_form_action() -> None:
    assert redirect_uri.origin("https://rp.example.com/cb?x=1") == "https://rp.example.com"
    assert redirect_uri.origin("http://localhost:8080/cb") == "http://localhost:8080"
    assert redirect_uri.origin("com.example.app:/oauth") == "com.example.app:"
    assert redirect_uri.origin("https://a b/") is None
    assert redirect_uri.origin("https://x@evil/") is None
    csp = content_security_policy(["https://rp.example.com"])
    assert "form-action 'self' https://rp.example.com;" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp


def _request() -> AuthorizationRequest:
    return AuthorizationRequest(
        client_id="cl_abcdefgh12345678",
        redirect_uri="https://rp.example.com/cb",
        scope=("openid", "email"),
        state="s",
        nonce="n",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        prompt=("login",),
        fresh_after=int(time.time()),
        login_hint=None,
        expires=int(time.time()) + 60,
    )


def test_sealed_request_is_bound_to_its_app_and_expires() -> None:
    box = SecretBox.from_config(generate_master_key())
    request = _request()
    sealed = request.seal(box, "shop")
    assert AuthorizationRequest.unseal(box, "shop", sealed) == request
    assert AuthorizationRequest.unseal(box, "forum", sealed) is None  # B1
    tampered = sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")
    assert AuthorizationRequest.unseal(box, "shop", tampered) is None
    expired = replace(request, expires=int(time.time()) - 1).seal(box, "shop")
    assert AuthorizationRequest.unseal(box, "shop", expired) is None
    assert AuthorizationRequest.unseal(box, "shop", None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("#B00B1E", "#b00b1e"),
        ("#fff", None),
        ("red", None),
        ("#112233;} body{background:url(x)}", None),
        ("#11223g", None),
        (None, None),
        (123, None),
    ],
)
def test_colour_must_be_rrggbb(value: object, expected: str | None) -> None:
    assert valid_color(value) == expected


def test_logo_must_be_https() -> None:
    assert valid_logo_url("https://cdn.example.com/logo.png")
    assert valid_logo_url("http://cdn.example.com/logo.png") is None
    assert valid_logo_url("javascript:alert(1)") is None
    assert valid_logo_url("https://user:pw@cdn.example.com/l.png") is None
    with pytest.raises(ValueError, match="rrggbb"):
        stylesheet("red", "#ffffff")
    assert stylesheet("#b00b1e", "#ffffff").startswith(b":root { --brand: #b00b1e;")


def test_session_cookie_attributes() -> None:
    for public_url, secure in (
        ("https://auth.example.com", True),
        ("http://127.0.0.1:8000", False),
    ):
        settings = Settings(public_url=public_url)
        response = Response()
        name = browser_session.cookie_name("shop")
        browser_session.set_cookie(response, settings, "shop", name, "obs_x", 3600)
        header = response.headers["set-cookie"]
        assert header.startswith("oneauth_session_shop=obs_x;")
        assert "Path=/apps/shop" in header
        assert "HttpOnly" in header
        assert "SameSite=lax" in header
        assert ("Secure" in header) is secure


def test_client_token_lifetimes_are_bounded() -> None:
    spec = clients.ClientSpec(
        name="x",
        kind="public",
        grant_types=frozenset({"authorization_code"}),
        scopes=frozenset({"openid"}),
        redirect_uris=("https://rp.example.com/cb",),
    )
    assert replace(spec, access_token_ttl=3600).validated().access_token_ttl == 3600
    with pytest.raises(clients.ClientError, match="access token lifetime"):
        replace(spec, access_token_ttl=3601).validated()
    with pytest.raises(clients.ClientError, match="refresh token lifetime"):
        replace(spec, refresh_token_ttl=10).validated()
    with pytest.raises(clients.ClientError, match="fragment"):
        replace(spec, redirect_uris=("https://rp.example.com/cb#x",)).validated()
    with pytest.raises(clients.ClientError, match="implicit"):
        replace(spec, grant_types=frozenset({"implicit"})).validated()
