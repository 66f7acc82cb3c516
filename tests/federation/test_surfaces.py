"""Federation's surfaces (issue 14) against a real upstream: panva's oidc-provider.

The hosted sign-in (login page button, ``idp_hint``), the first-party start with
``redirect_uri`` and ``POST /v1/federation/complete``, the link confirmation page,
self-service identities, cross-app refusals and bad input. The upstream runs on
loopback (the ``upstream_op`` fixture of tests/federation/conftest.py); oneauth runs
in-process (httpx's ASGI transport at http://testserver): the upstream only ever
redirects the client back, and oneauth's server-side calls (discovery, token, JWKS)
reach the upstream over the network.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from federation.rig.node_op import Account, UpstreamOP
from oidc._support import PASSWORD, RP, challenge_of, exchange, forms, jwt_claims, query, sign_in
from oidc._support import register as register_client
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.federation import providers
from oneauth.services import Services
from oneauth.settings import Settings

LINK_URL = "https://app.example.com/signed-in"


@dataclass
class Fed:
    """An app with the upstream as its provider and a first-party client (RP)."""

    app: AppRecord
    provider_id: str
    client_id: str

    @property
    def base(self) -> str:
        return f"/apps/{self.app.app_id}"

    @property
    def issuer(self) -> str:
        return f"http://testserver/apps/{self.app.app_id}"


def add_provider(
    settings: Settings, services: Services, app: AppRecord, op: UpstreamOP, **policy: Any
) -> str:
    """Configure ``op`` as a provider of ``app`` with the app's own client at the
    upstream (registered with exactly this app's callback URL)."""
    spec = providers.ProviderSpec(
        kind="oidc", name="Upstream", client_id="pending", issuer=op.issuer, **policy
    )
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        made = providers.create(conn, services.box, app.app_id, spec, "pending", allow_http=True)
        callback = providers.callback_url(settings.issuer_for(app.app_id), made.id)
        client = op.register_client([callback])
        assert client.client_secret is not None
        providers.update(
            conn,
            services.box,
            app.app_id,
            made.id,
            secret=client.client_secret,
            allow_http=True,
            client_id=client.client_id,
        )
    return made.id


@pytest.fixture
def federated(
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    upstream_op: UpstreamOP,
) -> Callable[..., Fed]:
    def make(app_settings: dict[str, Any] | None = None, **policy: Any) -> Fed:
        app = provision(app_settings={"link_urls": [LINK_URL], **(app_settings or {})})
        client_id, _ = register_client(settings, app, first_party=True, redirect_uris=(RP,))
        return Fed(app, add_provider(settings, services, app, upstream_op, **policy), client_id)

    return make


@pytest.fixture
async def upstream_http() -> Any:
    """The browser's side at the upstream (its own cookies)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


def authorize_query(fed: Fed, verifier: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": fed.client_id,
        "redirect_uri": RP,
        "scope": "openid email",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
        **extra,
    }


def start_link(html: str, fed: Fed) -> str:
    """The "Continue with Upstream" link of the hosted login page."""
    marker = f'href="{fed.issuer}/federation/{fed.provider_id}/start?'
    at = html.index(marker) + len('href="')
    return html[at : html.index('"', at)].replace("&amp;", "&")


async def to_upstream(client: httpx.AsyncClient, url: str) -> str:
    response = await client.get(url)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def through_upstream(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    op: UpstreamOP,
    start: str,
    account: Account,
) -> httpx.Response:
    """start -> the upstream's login and consent -> our callback (its response)."""
    authorize = await to_upstream(client, start)
    assert authorize.startswith(op.authorization_endpoint), authorize
    callback = await op.sign_in(upstream_http, authorize, account)
    assert urlsplit(callback).path.endswith("/callback"), callback
    return await client.get(callback)


async def follow_to_client(client: httpx.AsyncClient, response: httpx.Response) -> str:
    """Follow our own redirects until one leaves for the client; its URL."""
    for _ in range(5):
        assert response.status_code in (302, 303), response.text
        location = response.headers["location"]
        if not location.startswith("http://testserver/"):
            return str(location)
        response = await client.get(location)
    raise AssertionError("no redirect to the client")


async def identities(client: httpx.AsyncClient, fed: Fed, access_token: str) -> list[Any]:
    response = await client.get(
        f"{fed.base}/v1/identities", headers={"authorization": f"Bearer {access_token}"}
    )
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["identities"]
    return items


async def audit_events(services: Services, app: AppRecord, event: str) -> list[Any]:
    async with services.router.enter(app) as conn:
        rows = await conn.fetch(
            "SELECT outcome, details::text AS details FROM audit_log WHERE event = $1", event
        )
    return [dict(r) for r in rows]


async def local_account(client: httpx.AsyncClient, services: Services, fed: Fed) -> str:
    """A local account with a password and a verified address (an unverified one is
    the pre-hijacking case: the upstream's proof of the mailbox wins there, P7)."""
    email = f"local-{secrets.token_hex(4)}@example.com"
    signup = await client.post(f"{fed.base}/v1/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    async with services.router.enter(fed.app) as conn:
        await conn.execute("UPDATE users SET email_verified = true WHERE email = $1", email)
    client.cookies.clear()
    return email


async def count(services: Services, app: AppRecord, table: str) -> int:
    async with services.router.enter(app) as conn:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


# --- hosted sign-in ----------------------------------------------------------------


async def test_hosted_sign_in_through_the_upstream_ends_with_a_code_for_the_client(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
) -> None:
    fed = federated()
    verifier = secrets.token_urlsafe(48)
    page = await client.get(f"{fed.base}/oauth/authorize", params=authorize_query(fed, verifier))
    assert page.status_code == 200
    assert "Continue with Upstream" in page.text
    account = Account.new()
    answer = await through_upstream(
        client, upstream_http, upstream_op, start_link(page.text, fed), account
    )
    done = await follow_to_client(client, answer)
    assert done.startswith(RP)
    assert query(done)["state"] == "st-1"
    tokens = await exchange(client, fed.app.app_id, fed.client_id, query(done)["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    _, claims = jwt_claims(tokens.json()["id_token"])
    assert claims.get("email") == account.email, claims
    assert claims["nonce"] == "n-1"
    # The sign-in used one upstream factor: no "mfa" (the upstream's amr is not trusted).
    assert "mfa" not in claims.get("amr", [])
    # The session's access token is a first-party one: the identity is listed.
    listed = await identities(client, fed, tokens.json()["access_token"])
    assert [i["provider_id"] for i in listed] == [fed.provider_id]
    assert listed[0]["issuer"] == upstream_op.issuer


async def test_idp_hint_goes_straight_to_the_provider_and_an_unknown_one_shows_the_page(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
) -> None:
    fed = federated()
    verifier = secrets.token_urlsafe(48)
    hinted = authorize_query(fed, verifier, idp_hint=fed.provider_id)
    response = await client.get(f"{fed.base}/oauth/authorize", params=hinted)
    assert response.status_code == 302
    start = response.headers["location"]
    assert start.startswith(f"{fed.issuer}/federation/{fed.provider_id}/start?flow=")
    answer = await through_upstream(client, upstream_http, upstream_op, start, Account.new())
    assert (await follow_to_client(client, answer)).startswith(RP)

    client.cookies.clear()
    unknown = authorize_query(fed, verifier, idp_hint="idp_" + "x" * 22)
    response = await client.get(
        f"{fed.base}/oauth/authorize", params=unknown, follow_redirects=True
    )
    assert response.status_code == 400
    assert "not available" in response.text
    assert 'name="password"' in response.text


async def test_hosted_sign_in_goes_through_the_apps_mfa_policy(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
) -> None:
    fed = federated(app_settings={"mfa": "required"})
    verifier = secrets.token_urlsafe(48)
    page = await client.get(f"{fed.base}/oauth/authorize", params=authorize_query(fed, verifier))
    answer = await through_upstream(
        client, upstream_http, upstream_op, start_link(page.text, fed), Account.new()
    )
    # The upstream sign-in is one factor: the enrolment page, no code for the client.
    assert answer.status_code == 200, answer.text
    enrol = next(f for f in forms(answer.text) if f.action.endswith("/login/enrol"))
    assert enrol.fields["flow_token"].startswith("ofl_")
    assert "location" not in answer.headers


# --- first-party start and /v1/federation/complete ------------------------------------


async def first_party_code(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    op: UpstreamOP,
    fed: Fed,
    account: Account,
) -> str:
    start = f"{fed.issuer}/federation/{fed.provider_id}/start?redirect_uri={LINK_URL}"
    answer = await through_upstream(client, upstream_http, op, start, account)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(LINK_URL + "?code="), location
    return query(location)["code"]


async def test_first_party_start_ends_with_a_single_use_code_for_the_token_set(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
    services: Services,
) -> None:
    fed = federated()
    account = Account.new()
    code = await first_party_code(client, upstream_http, upstream_op, fed, account)
    url = f"{fed.base}/v1/federation/complete"
    # Two submits at once: exactly one gets the tokens.
    first, second = await asyncio.gather(
        client.post(url, json={"code": code}), client.post(url, json={"code": code})
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 400], (first.text, second.text)
    winner = first if first.status_code == 200 else second
    loser = second if winner is first else first
    assert loser.json()["code"] == "invalid_link_or_code"
    me = await client.get(
        f"{fed.base}/v1/me", headers={"authorization": f"Bearer {winner.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == account.email
    again = await client.post(url, json={"code": code})
    assert again.status_code == 400
    failures = [e for e in await audit_events(services, fed.app, "federation.complete")]
    assert len(failures) == 2
    assert all(e["outcome"] == "failure" for e in failures)


async def test_first_party_start_needs_one_of_the_apps_link_urls(
    client: httpx.AsyncClient, federated: Callable[..., Fed], services: Services
) -> None:
    fed = federated()
    for bad in (RP, "https://evil.example/cb", LINK_URL + "/x", ""):
        response = await client.get(
            f"{fed.base}/federation/{fed.provider_id}/start", params={"redirect_uri": bad}
        )
        assert response.status_code == 400, bad
        assert "Nothing was created" in response.text
    assert await count(services, fed.app, "federation_requests") == 0


async def test_first_party_code_goes_through_the_mfa_policy(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
) -> None:
    fed = federated(app_settings={"mfa": "required"})
    code = await first_party_code(client, upstream_http, upstream_op, fed, Account.new())
    response = await client.post(f"{fed.base}/v1/federation/complete", json={"code": code})
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "mfa_enrollment_required"
    assert response.json()["flow_token"].startswith("ofl_")


# --- cross-app -----------------------------------------------------------------------


async def test_the_same_upstream_at_two_apps_is_two_unrelated_users_and_nothing_crosses(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
    services: Services,
) -> None:
    a, b = federated(), federated()
    account = Account.new()
    # A's provider id names nothing at B.
    response = await client.get(
        f"{b.base}/federation/{a.provider_id}/start", params={"redirect_uri": LINK_URL}
    )
    assert response.status_code == 404
    assert "not available" in response.text
    # A's callback (state and code of A's flow) replayed at B: refused, nothing created.
    start = f"{a.issuer}/federation/{a.provider_id}/start?redirect_uri={LINK_URL}"
    authorize = await to_upstream(client, start)
    callback = await upstream_op.sign_in(upstream_http, authorize, account)
    at_b = callback.replace(f"/apps/{a.app.app_id}/", f"/apps/{b.app.app_id}/")
    refused = await client.get(at_b)
    assert refused.status_code in (400, 404), refused.text
    assert "Nothing was created" in refused.text
    at_b_own = at_b.replace(a.provider_id, b.provider_id)
    refused = await client.get(at_b_own)
    assert refused.status_code == 400
    assert "Nothing was created" in refused.text
    assert await count(services, b.app, "users") == 0
    # The callback at A still works (the refusals at B did not burn A's state).
    answer = await client.get(callback)
    code_a = query(answer.headers["location"])["code"]
    # A's complete code is useless at B, and still good at A.
    useless = await client.post(f"{b.base}/v1/federation/complete", json={"code": code_a})
    assert useless.status_code == 400
    assert useless.json()["code"] == "invalid_link_or_code"
    tokens_a = await client.post(f"{a.base}/v1/federation/complete", json={"code": code_a})
    assert tokens_a.status_code == 200
    # The same upstream account at B: a second, unrelated user.
    client.cookies.clear()
    code_b = await first_party_code(client, upstream_http, upstream_op, b, account)
    tokens_b = await client.post(f"{b.base}/v1/federation/complete", json={"code": code_b})
    assert tokens_b.status_code == 200
    sub_a = jwt_claims(tokens_a.json()["access_token"])[1]["sub"]
    sub_b = jwt_claims(tokens_b.json()["access_token"])[1]["sub"]
    assert sub_a != sub_b
    # A's token lists nothing at B.
    at_b_with_a = await client.get(
        f"{b.base}/v1/identities",
        headers={"authorization": f"Bearer {tokens_a.json()['access_token']}"},
    )
    assert at_b_with_a.status_code == 401


async def test_a_callback_in_another_browser_or_replayed_is_refused(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
    services: Services,
) -> None:
    fed = federated()
    start = f"{fed.issuer}/federation/{fed.provider_id}/start?redirect_uri={LINK_URL}"
    authorize = await to_upstream(client, start)
    callback = await upstream_op.sign_in(upstream_http, authorize, Account.new())
    first = await client.get(callback)
    assert first.status_code == 302
    replayed = await client.get(callback)
    assert replayed.status_code == 400
    assert "Nothing was created" in replayed.text
    assert await count(services, fed.app, "users") == 1
    # Another browser (no flow cookie) bringing this browser's callback: refused.
    authorize = await to_upstream(client, start)
    callback = await upstream_op.sign_in(upstream_http, authorize, Account.new())
    transport = client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        stolen = await other.get(callback)
    assert stolen.status_code == 400
    assert "Nothing was created" in stolen.text
    assert await count(services, fed.app, "users") == 1


# --- linking --------------------------------------------------------------------------


async def test_an_existing_account_is_linked_only_after_its_password_and_a_confirmation(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
    services: Services,
) -> None:
    fed = federated()
    email = await local_account(client, services, fed)
    other = await local_account(client, services, fed)
    account = Account.new(email)
    verifier = secrets.token_urlsafe(48)
    page = await client.get(f"{fed.base}/oauth/authorize", params=authorize_query(fed, verifier))
    answer = await through_upstream(
        client, upstream_http, upstream_op, start_link(page.text, fed), account
    )
    assert answer.status_code == 200, answer.text
    assert "Link your account" in answer.text
    assert await count(services, fed.app, "user_identities") == 0  # never silently
    link_form = next(f for f in forms(answer.text) if "password" in f.fields)
    proof = {**link_form.fields, "email": email, "decision": "link"}
    wrong = await client.post(link_form.action, data={**proof, "password": "not it"})
    assert wrong.status_code == 400
    assert "not right" in wrong.text
    assert await count(services, fed.app, "user_identities") == 0
    # Another account's address and password prove nothing here either.
    elsewhere = await client.post(
        link_form.action, data={**proof, "email": other, "password": PASSWORD}
    )
    assert elsewhere.status_code == 400
    assert await count(services, fed.app, "user_identities") == 0
    right = await client.post(link_form.action, data={**proof, "password": PASSWORD})
    done = await follow_to_client(client, right)
    tokens = await exchange(client, fed.app.app_id, fed.client_id, query(done)["code"], verifier)
    assert tokens.status_code == 200
    _, claims = jwt_claims(tokens.json()["id_token"])
    async with services.router.enter(fed.app) as conn:
        local_id = await conn.fetchval("SELECT id::text FROM users WHERE email = $1", email)
    assert claims["sub"] == local_id
    (linked,) = await identities(client, fed, tokens.json()["access_token"])
    assert len(await audit_events(services, fed.app, "federation.link")) == 1
    # Next time the upstream signs in to that account directly.
    client.cookies.clear()
    code = await first_party_code(client, upstream_http, upstream_op, fed, account)
    again = await client.post(f"{fed.base}/v1/federation/complete", json={"code": code})
    assert jwt_claims(again.json()["access_token"])[1]["sub"] == claims["sub"]
    # The account has a password: the identity may go.
    auth = {"authorization": f"Bearer {again.json()['access_token']}"}
    gone = await client.delete(f"{fed.base}/v1/identities/{linked['id']}", headers=auth)
    assert gone.status_code == 204
    assert await identities(client, fed, again.json()["access_token"]) == []


async def test_declining_the_link_creates_nothing(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
    services: Services,
) -> None:
    fed = federated()
    email = await local_account(client, services, fed)
    start = f"{fed.issuer}/federation/{fed.provider_id}/start?redirect_uri={LINK_URL}"
    answer = await through_upstream(client, upstream_http, upstream_op, start, Account.new(email))
    assert answer.status_code == 200, answer.text
    decline = next(f for f in forms(answer.text) if f.buttons and "password" not in f.fields)
    response = await client.post(decline.action, data={**decline.fields, "decision": "cancel"})
    assert response.status_code == 400
    assert "Nothing was created" in response.text
    assert await count(services, fed.app, "user_identities") == 0
    assert await count(services, fed.app, "users") == 1
    assert await audit_events(services, fed.app, "federation.link") == []


async def test_an_unverified_upstream_email_never_links(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
    services: Services,
) -> None:
    fed = federated()
    email = await local_account(client, services, fed)
    start = f"{fed.issuer}/federation/{fed.provider_id}/start?redirect_uri={LINK_URL}"
    account = Account.new(email, email_verified=False)
    answer = await through_upstream(client, upstream_http, upstream_op, start, account)
    assert answer.status_code == 400, answer.text
    assert "Nothing was created" in answer.text
    assert "Link your account" not in answer.text
    assert await count(services, fed.app, "user_identities") == 0


# --- self-service -------------------------------------------------------------------


async def test_unlinking_the_last_way_to_sign_in_is_refused(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
    services: Services,
) -> None:
    fed = federated()
    code = await first_party_code(client, upstream_http, upstream_op, fed, Account.new())
    tokens = (await client.post(f"{fed.base}/v1/federation/complete", json={"code": code})).json()
    auth = {"authorization": f"Bearer {tokens['access_token']}"}
    (only,) = await identities(client, fed, tokens["access_token"])
    refused = await client.delete(f"{fed.base}/v1/identities/{only['id']}", headers=auth)
    assert refused.status_code == 409
    assert refused.json()["code"] == "conflict"
    assert [e["outcome"] for e in await audit_events(services, fed.app, "federation.unlink")] == [
        "denied"
    ]
    unknown = await client.delete(
        f"{fed.base}/v1/identities/00000000-0000-0000-0000-000000000000", headers=auth
    )
    assert unknown.status_code == 404
    malformed = await client.delete(f"{fed.base}/v1/identities/nope", headers=auth)
    assert malformed.status_code == 404


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/federation/idp_nope/start",
        "/federation/idp_nope/start?flow=garbage",
        "/federation/idp_nope/start?redirect_uri=https://x.example",
        "/federation/idp_nope/callback",
        "/federation/idp_nope/callback?code=x&state=y",
        "/federation/idp_nope/callback?error=access_denied&state=y",
        "/federation/%00/callback?state=%00",
        "/federation/x/callback?state=" + "s" * 5000,
    ],
)
async def test_bad_federation_input_is_a_clear_4xx_page(
    client: httpx.AsyncClient, federated: Callable[..., Fed], path: str
) -> None:
    fed = federated()
    response = await client.get(fed.base + path)
    assert 400 <= response.status_code < 500, response.text
    if "%00" not in path:  # a NUL in the URL is refused before any page (problem+json)
        assert response.headers["content-type"].startswith("text/html")


async def test_bad_complete_and_link_input_is_4xx(
    client: httpx.AsyncClient, federated: Callable[..., Fed]
) -> None:
    fed = federated()
    url = f"{fed.base}/v1/federation/complete"
    for body in ({}, {"code": ""}, {"code": "x" * 101}, {"code": 5}, {"code": "ofl_nope"}):
        response = await client.post(url, json=body)
        assert response.status_code in (400, 422), (body, response.text)
    page = await client.post(f"{fed.base}/federation/link", data={"flow_token": "x"})
    assert page.status_code in (400, 403)


async def test_the_account_page_links_another_provider_and_unlinks_it(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    upstream_op: UpstreamOP,
    federated: Callable[..., Fed],
    services: Services,
) -> None:
    fed = federated()
    email = await local_account(client, services, fed)
    signed = await sign_in(client, fed.app.app_id, fed.client_id, email)
    assert signed.location.startswith(RP)
    page = await client.get(f"{fed.base}/account")
    assert page.status_code == 200
    assert "Linked sign-in" in page.text
    assert "No other account signs you in here." in page.text
    link = next(f for f in forms(page.text) if f.action.endswith("/account/identities/link"))
    assert ("provider_id", fed.provider_id) in link.buttons
    # Without the page's CSRF token: refused, nothing started.
    forged = await client.post(link.action, data={"provider_id": fed.provider_id})
    assert forged.status_code == 403
    assert await count(services, fed.app, "federation_requests") == 0
    started = await client.post(link.action, data={**link.fields, "provider_id": fed.provider_id})
    assert started.status_code == 303, started.text
    authorize = started.headers["location"]
    assert authorize.startswith(upstream_op.authorization_endpoint)
    # An upstream account with another address: linked anyway (the user asked, signed in).
    callback = await upstream_op.sign_in(upstream_http, authorize, Account.new())
    answer = await client.get(callback)
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].endswith("/account?done=identity_linked")
    page = await client.get(answer.headers["location"])
    assert "Sign-in with that account is linked." in page.text
    unlink = next(f for f in forms(page.text) if f.action.endswith("/unlink"))
    assert await count(services, fed.app, "user_identities") == 1
    gone = await client.post(unlink.action, data=unlink.fields)
    assert gone.status_code == 303
    assert gone.headers["location"].endswith("/account?done=identity_unlinked")
    assert await count(services, fed.app, "user_identities") == 0
