"""Sign in with Apple's shape (issue 14, F9): ``response_mode=form_post`` and Apple's
signed client secret, end to end through the hosted pages.

The upstream is the rig's Apple-style stand-in (rig/faults.py ``register_apple_client``:
apple.com is unreachable here): its answer is an HTML form posting ``code``, ``state``
and, once, ``user`` to our callback, and its token endpoint accepts the code only
with an ES256 client-secret JWT that verifies with the client's public key and
names the team (iss), the client (sub), Apple (aud) and the key (kid).

The browser is httpx. A cross-site POST carries none of this site's SameSite=Lax
cookies: that POST is sent by a cookie-less client on the same service
(:func:`other_browser`), and the re-post page's form by the browser's own client,
as the browser would after the page's script (or its button) submits it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from jwcrypto import jwk

from federation.rig.faults import OMIT, FaultyOP
from federation.rig.node_op import Account
from oidc._support import RP, forms
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.federation import providers, upstream
from oneauth.services import Services
from oneauth.settings import Settings

from ._finish import (
    Hosted,
    apple_register,
    count,
    follow_to_client,
    hosted_app,
    id_token_at_client,
    login_page_start,
    nothing_created,
    other_browser,
    rows,
    to_upstream,
)


@pytest.fixture
async def upstream_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


@pytest.fixture
def apple(
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    faulty_op: FaultyOP,
) -> Callable[..., tuple[Hosted, dict[str, Any]]]:
    # Apple's discovery promises no iss parameter and its answer carries none.
    faulty_op.discovery_overrides["authorization_response_iss_parameter_supported"] = OMIT

    def make(**spec: Any) -> tuple[Hosted, dict[str, Any]]:
        keep: dict[str, Any] = {}
        hosted = hosted_app(
            settings,
            services,
            provision,
            kind="apple",
            issuer=faulty_op.issuer,
            register=apple_register(faulty_op, keep),
            name="Apple",
            auth_params={"team_id": "pending", "key_id": "pending"},
            **spec,
        )
        return hosted, keep

    return make


def apple_account(**kw: Any) -> Account:
    # Apple's ID token says email_verified as the JSON string "true".
    account = Account.new(email_verified=None, name="Jane Appleseed", **kw)
    account.extra["email_verified"] = "true"
    return account


async def answer_of(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    op: FaultyOP,
    hosted: Hosted,
    account: Account,
) -> tuple[str, dict[str, str], str]:
    """Login page button -> start -> Apple's page: the form Apple would post
    (its action and fields), and the PKCE verifier of the client."""
    start, verifier = await login_page_start(client, hosted)
    authorize = await to_upstream(client, start)
    assert "response_mode=form_post" in authorize
    action, fields = await op.sign_in_form_post(upstream_http, authorize, account)
    assert action == hosted.callback
    return action, fields, verifier


async def cross_site_post(
    client: httpx.AsyncClient, url: str, data: dict[str, str]
) -> httpx.Response:
    async with other_browser(client) as cross:
        return await cross.post(url, data=data)


async def test_apple_form_post_is_re_posted_same_site_and_signs_in_with_the_signed_secret(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    apple: Callable[..., tuple[Hosted, dict[str, Any]]],
    services: Services,
) -> None:
    hosted, _ = apple()
    account = apple_account()
    account.extra["apple_user"] = {"email": "someone-else@evil.example"}
    action, fields, verifier = await answer_of(client, upstream_http, faulty_op, hosted, account)
    assert "user" in fields  # Apple's first sign-in: the name, and an email never used

    # Apple's cross-site POST: no cookie. The answer is our re-post page, nothing else.
    page = await cross_site_post(client, action, fields)
    assert page.status_code == 200, page.text
    assert "set-cookie" not in page.headers  # the browser's CSRF seed is left alone
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    # Browsers check form-action along the re-post's redirects: they end at the client.
    rp = urlsplit(RP)
    assert f"form-action 'self' {rp.scheme}://{rp.netloc};" in csp
    assert "<script>" not in page.text  # no inline script
    assert f'<script src="{hosted.issuer}/assets/federation-repost.js">' in page.text
    (repost,) = forms(page.text)
    assert repost.method == "post"
    assert repost.action == hosted.callback
    assert repost.fields == {**fields, "reposted": "1"}
    # The re-post page used up nothing: the state is still live.
    (request,) = await rows(services, hosted.app, "SELECT used_at FROM federation_requests")
    assert request["used_at"] is None
    script = await client.get(f"{hosted.base}/assets/federation-repost.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "form.submit()" in script.text

    # The browser posts it again, same-site: the cookie comes along and it completes.
    done = await follow_to_client(client, await client.post(repost.action, data=repost.fields))
    _tokens, claims = await id_token_at_client(client, hosted, done, verifier)
    assert claims["amr"] == ["fed"]
    assert claims["email"] == account.email  # the ID token's, never the `user` field's
    assert faulty_op.client_secret_verdicts == ["ok"]
    (user,) = await rows(services, hosted.app, "SELECT email FROM users")
    assert user["email"] == account.email


async def test_a_form_post_with_the_cookie_completes_without_a_re_post(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    apple: Callable[..., tuple[Hosted, dict[str, Any]]],
) -> None:
    hosted, _ = apple()
    action, fields, verifier = await answer_of(
        client, upstream_http, faulty_op, hosted, apple_account()
    )
    answer = await client.post(action, data=fields)  # same-site upstream: cookie sent
    assert answer.status_code == 303, answer.text
    _tokens, claims = await id_token_at_client(
        client, hosted, await follow_to_client(client, answer), verifier
    )
    assert claims["amr"] == ["fed"]


async def test_a_re_post_without_the_cookie_is_refused_not_re_posted_again(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    apple: Callable[..., tuple[Hosted, dict[str, Any]]],
    services: Services,
) -> None:
    hosted, _ = apple()
    action, fields, _ = await answer_of(client, upstream_http, faulty_op, hosted, apple_account())
    # Another browser (or a blocked cookie) submitting the re-post form: refused.
    refused = await cross_site_post(client, action, {**fields, "reposted": "1"})
    assert refused.status_code == 400, refused.text
    assert "Nothing was created" in refused.text
    assert await nothing_created(services, hosted.app) == {
        "users": 0,
        "user_identities": 0,
        "sessions": 0,
        "federation_pending_links": 0,
    }
    denied = await rows(
        services,
        hosted.app,
        "SELECT details->>'reason' AS reason FROM audit_log WHERE event = 'federation.callback'",
    )
    assert [d["reason"] for d in denied] == ["invalid_state"]
    # ... and that state is used up: the real browser cannot complete it either.
    again = await client.post(action, data={**fields, "reposted": "1"})
    assert again.status_code == 400
    assert faulty_op.token_requests == 0


async def test_the_re_post_page_cannot_be_abused(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    apple: Callable[..., tuple[Hosted, dict[str, Any]]],
    services: Services,
) -> None:
    hosted, _ = apple()
    hostile = {
        "state": '"><script>alert(1)</script>',
        "code": "x' onmouseover='alert(1)",
        "redirect_uri": "https://evil.example/",
        "client_id": "other",
        "csrf": "forged",
        "user": '{"name":{"firstName":"<b>Eve</b>"}}',
    }
    page = await cross_site_post(client, hosted.callback, hostile)
    assert page.status_code == 200
    # No live flow for that state: no client origin in form-action.
    assert "form-action 'self';" in page.headers["content-security-policy"]
    assert "<script>alert" not in page.text
    assert "<b>Eve" not in page.text
    assert "&#34;&gt;&lt;script&gt;" in page.text or "&quot;&gt;&lt;script&gt;" in page.text
    (repost,) = forms(page.text)
    # Only the callback's own parameters go back (escaped, as posted); nothing else.
    assert set(repost.fields) == {"state", "code", "user", "reposted"}
    assert repost.fields["state"] == hostile["state"]
    # A login CSRF: the attacker's own answer (its state, its code) re-posted in the
    # victim's browser, which has a flow of its own: the state is not this browser's.
    attacker = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with attacker:
        action, fields, _ = await answer_of(
            attacker, upstream_http, faulty_op, hosted, apple_account()
        )
    await to_upstream(client, (await login_page_start(client, hosted))[0])  # the victim's flow
    relayed = await cross_site_post(client, action, fields)
    (form,) = forms(relayed.text)
    refused = await client.post(form.action, data=form.fields)
    assert refused.status_code == 400, refused.text
    assert "Nothing was created" in refused.text
    assert await count(services, hosted.app, "users") == 0
    assert await count(services, hosted.app, "sessions") == 0
    assert faulty_op.token_requests == 0  # refused before any code was exchanged
    # A bad state at the re-posted (same-site) request: refused too.
    bad = await client.post(hosted.callback, data={"state": "nope", "code": "c", "reposted": "1"})
    assert bad.status_code == 400
    # Not a form at all: a clear page, never a 5xx.
    odd = await client.post(
        hosted.callback, content=b"{}", headers={"content-type": "application/json"}
    )
    assert odd.status_code == 400
    assert odd.headers["content-type"].startswith("text/html")


async def test_app_as_form_post_answer_at_app_b_is_refused(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    apple: Callable[..., tuple[Hosted, dict[str, Any]]],
    services: Services,
) -> None:
    a, _ = apple()
    b, _ = apple()
    action, fields, verifier = await answer_of(client, upstream_http, faulty_op, a, apple_account())
    # At B's callback (B's provider id, and A's id), re-posted in this browser, which
    # also has a flow at B: refused, nothing at B.
    await to_upstream(client, (await login_page_start(client, b))[0])
    for target in (b.callback, b.callback.replace(b.provider_id, a.provider_id)):
        page = await cross_site_post(client, target, fields)
        (form,) = forms(page.text)
        assert form.action == target
        refused = await client.post(form.action, data=form.fields)
        assert refused.status_code in (400, 404), refused.text
        assert "Nothing was created" in refused.text
    assert await count(services, b.app, "users") == 0
    # A's answer still works at A (B's refusals burnt nothing of A's).
    page = await cross_site_post(client, action, fields)
    (form,) = forms(page.text)
    done = await follow_to_client(client, await client.post(form.action, data=form.fields))
    _tokens, claims = await id_token_at_client(client, a, done, verifier)
    assert claims["amr"] == ["fed"]


@pytest.mark.parametrize("wrong", ["key", "key_id", "team_id"])
async def test_a_client_secret_apple_would_refuse_is_a_refused_sign_in(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    apple: Callable[..., tuple[Hosted, dict[str, Any]]],
    settings: Settings,
    services: Services,
    wrong: str,
) -> None:
    hosted, keep = apple()
    changes: dict[str, Any] = {}
    secret = None
    params = {"team_id": keep["apple"].team_id, "key_id": keep["apple"].key_id}
    if wrong == "key":  # another key under the right kid: the signature fails
        other = jwk.JWK.generate(kty="EC", crv="P-256")
        secret = other.export_to_pem(private_key=True, password=None).decode()
    else:
        changes["auth_params"] = {**params, wrong: "WRONG"}
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, hosted.app.names),
    ):
        providers.update(
            conn,
            services.box,
            hosted.app.app_id,
            hosted.provider_id,
            secret=secret,
            allow_http=True,
            **changes,
        )
    action, fields, _ = await answer_of(client, upstream_http, faulty_op, hosted, apple_account())
    page = await cross_site_post(client, action, fields)
    (form,) = forms(page.text)
    refused = await client.post(form.action, data=form.fields)
    assert refused.status_code == 400, refused.text
    assert "refused to complete the sign-in" in refused.text
    assert faulty_op.client_secret_verdicts == [
        {"key": "signature", "key_id": "kid", "team_id": "iss"}[wrong]
    ]
    assert await count(services, hosted.app, "users") == 0


def test_apples_user_field_gives_a_name_and_never_an_email() -> None:
    name = upstream.apple_user_name(
        '{"name":{"firstName":"Jane","lastName":"Appleseed"},"email":"x@evil.example"}'
    )
    assert name == "Jane Appleseed"
    for bad in (None, "", "not json", "[]", '{"name":"Jane"}', '{"email":"x@evil.example"}'):
        assert upstream.apple_user_name(bad) is None
    assert upstream.apple_user_name('{"name":{"firstName":"' + "a" * 500 + '"}}') == "a" * 200
    assert upstream.apple_user_name('{"name":{"firstName":"J\\u0000\\nane"}}') == "Jane"


async def test_two_re_posts_of_one_answer_at_once_sign_in_once(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    apple: Callable[..., tuple[Hosted, dict[str, Any]]],
    services: Services,
) -> None:
    hosted, _ = apple()
    action, fields, _ = await answer_of(client, upstream_http, faulty_op, hosted, apple_account())
    (form,) = forms((await cross_site_post(client, action, fields)).text)
    first, second = await asyncio.gather(
        client.post(form.action, data=form.fields), client.post(form.action, data=form.fields)
    )
    assert sorted([first.status_code, second.status_code]) == [303, 400], (
        first.text,
        second.text,
    )
    assert faulty_op.token_requests == 1  # the state was used once: one code exchange
    assert await count(services, hosted.app, "users") == 1
