"""P6: mail links go only to the hosted pages or the operator's ``link_urls``, matched exactly.

An OAuth client's redirect URI is never a link destination: a third party that
registered one would receive the victim's reset link (or the magic link of a
flow it started itself) by naming it in the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import PolicyError, parse
from oneauth.db import ops
from oneauth.mail.backends import MemoryBackend
from oneauth.oauth import clients
from oneauth.services import Services
from oneauth.settings import Settings

from .conftest import PASSWORD, link_in, login, post, query, signup, token_in, unique_email

THIRD_PARTY = "https://rp.example.com/cb"
NATIVE_LOOPBACK = "http://127.0.0.1:5173/cb"
NATIVE_SCHEME = "com.example.app:/reset"
SPA = "https://spa.example/auth/link"


def register(settings: Settings, app: AppRecord, *, redirect_uris: list[str]) -> None:
    """A (third-party) public client of the app with these redirect URIs."""
    spec = clients.ClientSpec(
        name="Third party",
        kind="public",
        grant_types=frozenset({"authorization_code", "refresh_token"}),
        scopes=frozenset(clients.USER_SCOPES),
        redirect_uris=tuple(redirect_uris),
    )
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        clients.create(conn, spec)


async def _outbox(services: Services, app: AppRecord) -> int:
    return int((await query(services, app, "SELECT count(*) FROM outbox"))[0][0])


async def _mail_requests(
    client: httpx.AsyncClient, app: AppRecord, addr: str, token: str, redirect_uri: str
) -> list[httpx.Response]:
    """Every request that mails a link, each naming ``redirect_uri``."""
    return [
        await post(
            client, app, "/v1/password/reset/request", {"email": addr, "redirect_uri": redirect_uri}
        ),
        await post(
            client, app, "/v1/email/verify/request", {"email": addr, "redirect_uri": redirect_uri}
        ),
        await post(
            client,
            app,
            "/v1/passwordless/start",
            {"email": addr, "method": "link", "redirect_uri": redirect_uri},
        ),
        await client.post(
            f"/apps/{app.app_id}/v1/email/change",
            json={
                "new_email": unique_email("new"),
                "password": PASSWORD,
                "redirect_uri": redirect_uri,
            },
            headers={"authorization": f"Bearer {token}"},
        ),
    ]


async def test_client_redirect_uris_are_never_link_destinations(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"passwordless": True})
    # A third-party web client and a native client (loopback and custom scheme).
    register(settings, app, redirect_uris=[THIRD_PARTY])
    register(settings, app, redirect_uris=[NATIVE_LOOPBACK, NATIVE_SCHEME])
    addr = unique_email("victim")
    token = (await signup(client, app, addr)).json()["access_token"]
    await deliver(app)
    mailbox.messages.clear()
    before = await _outbox(services, app)
    for uri in (THIRD_PARTY, NATIVE_LOOPBACK, NATIVE_SCHEME):
        for r in await _mail_requests(client, app, addr, token, uri):
            assert r.status_code == 422, (uri, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "validation_failed"
            assert r.json()["field"] == "redirect_uri"
    # Refused before anything was stored or queued: nothing is mailed.
    assert await _outbox(services, app) == before
    await deliver(app)
    assert mailbox.to(addr) == []
    pending = "SELECT count(*) FROM one_time_tokens WHERE used_at IS NULL"
    assert (await query(services, app, pending))[0][0] == 1  # only the signup's verification


async def test_link_urls_allow_exactly_what_is_listed(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    listed = [SPA, NATIVE_SCHEME, NATIVE_LOOPBACK]
    app = provision(app_settings={"passwordless": True, "link_urls": listed})
    for uri in listed:
        addr = unique_email()  # a fresh address each time: the mail throttle is per address
        token = (await signup(client, app, addr)).json()["access_token"]
        await deliver(app)
        mailbox.messages.clear()
        for r in await _mail_requests(client, app, addr, token, uri):
            assert r.status_code == 202, (uri, r.text)
        await deliver(app)
        with_link = [m.text for m in mailbox.messages if "token=" in m.text]
        assert len(with_link) == 4  # reset, verification, magic link, email change (new address)
        assert all(f"\n{uri}?token=" in text for text in with_link)
    # No prefix, case, slash, query or port variation of a listed URL, and nothing unlisted.
    for uri in (
        SPA + "/",
        SPA + "x",
        SPA + "?next=/",
        SPA.replace("https://", "https://SPA."),
        "https://spa.example/auth",
        "https://spa.example/auth/link/../link",
        "http://spa.example/auth/link",
        "com.example.app:/reset/",
        "com.example.app://reset",
        "http://127.0.0.1:5174/cb",
        "http://localhost:5173/cb",
    ):
        before = await _outbox(services, app)
        r = await post(
            client, app, "/v1/password/reset/request", {"email": addr, "redirect_uri": uri}
        )
        assert r.status_code == 422, uri
        assert await _outbox(services, app) == before


async def test_reset_link_at_a_listed_url_completes(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(app_settings={"link_urls": [SPA]})
    addr = unique_email()
    await signup(client, app, addr)
    r = await post(client, app, "/v1/password/reset/request", {"email": addr, "redirect_uri": SPA})
    assert r.status_code == 202
    await deliver(app)
    text = mailbox.to(addr)[-1].text
    assert link_in(text).startswith(SPA + "?token=")
    new = "a brand new passphrase 99"
    body = {"token": token_in(text), "new_password": new}
    assert (await post(client, app, "/v1/password/reset", body)).status_code == 204
    assert (await login(client, app, addr, new)).status_code == 200


async def test_magic_link_at_a_listed_url_needs_the_starters_flow_token(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    """A flow started by one party (the attacker holds its flow_token) cannot be
    completed by the party the link reached, nor with another flow's token."""
    app = provision(app_settings={"passwordless": True, "link_urls": [SPA]})
    addr = unique_email("victim")
    await signup(client, app, addr)
    start = {"email": addr, "method": "link", "redirect_uri": SPA}
    attacker_flow = (await post(client, app, "/v1/passwordless/start", start)).json()["flow_token"]
    await deliver(app)
    attacker_link = token_in(mailbox.to(addr)[-1].text)
    # The victim's front end holds its own flow, not the attacker's.
    victim_flow = (await post(client, app, "/v1/passwordless/start", start)).json()["flow_token"]
    await deliver(app)
    victim_link = token_in(mailbox.to(addr)[-1].text)
    for flow, link in ((victim_flow, attacker_link), (attacker_flow, victim_link)):
        r = await post(
            client, app, "/v1/passwordless/complete", {"flow_token": flow, "token": link}
        )
        assert r.status_code == 400
    # The starter with its own link still signs in (the binding, not a broken flow).
    r = await post(
        client, app, "/v1/passwordless/complete", {"flow_token": victim_flow, "token": victim_link}
    )
    assert r.status_code == 200


async def test_another_apps_link_urls_do_not_apply(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    a = provision(name="App A")
    b = provision(name="App B", app_settings={"link_urls": [SPA]})
    addr = unique_email("both")
    for app in (a, b):
        await signup(client, app, addr)
        await deliver(app)
    mailbox.messages.clear()
    before = await _outbox(services, a)
    r = await post(client, a, "/v1/password/reset/request", {"email": addr, "redirect_uri": SPA})
    assert r.status_code == 422
    assert await _outbox(services, a) == before
    r = await post(client, b, "/v1/password/reset/request", {"email": addr, "redirect_uri": SPA})
    assert r.status_code == 202
    await deliver(a)
    await deliver(b)
    [sent] = mailbox.to(addr)
    assert f"\n{SPA}?token=" in sent.text
    assert b.display_name in sent.text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://spa.example/cb", "must be a list"),
        ([42], "must be a list"),
        (["https://spa.example/cb#frag"], "fragment"),
        (["https://user:pw@spa.example/cb"], "user information"),
        (["http://spa.example/cb"], "https"),
        (["spa.example/cb"], "absolute"),
        (["localhost:3000/cb"], "without a scheme"),
        (["HTTPS://spa.example/cb"], "lowercase"),
        (["https:///cb"], "host"),
        (["https://spa.example/cb?token=1"], "token parameter"),
        (["javascript:alert(1)"], "javascript"),
        (["data:text/html,hi"], "data"),
        (["https://spa.example/c b"], "spaces"),
        (["https://spa.example:99999/"], "not a valid URL"),
        ([f"https://spa.example/{i}" for i in range(21)], "at most"),
    ],
)
def test_link_urls_are_validated_by_the_policy_parser(value: Any, message: str) -> None:
    with pytest.raises(PolicyError, match="link_urls") as raised:
        parse({"link_urls": value})
    assert message in str(raised.value)


def test_link_urls_accept_what_an_operator_lists() -> None:
    listed = [SPA, NATIVE_SCHEME, NATIVE_LOOPBACK, "http://localhost:3000/cb", "http://[::1]/cb"]
    assert parse({"link_urls": listed}).link_urls == tuple(listed)
    assert parse({}).link_urls == ()


def test_provision_refuses_bad_link_urls(settings: Settings) -> None:
    with ops.connect(settings.operator_url) as conn, pytest.raises(lifecycle.AppError) as raised:
        lifecycle.provision(
            conn, settings, "t-badlinks", "Bad", app_settings={"link_urls": ["http://x.example/"]}
        )
    assert "link_urls" in str(raised.value)
