"""The link page's other proof (issue 14, F11): where the app signs in by mailed
codes, an account without a password proves itself with a code mailed to its
address (the email_code strategy of the flow engine), then the link is made.

No enumeration: the ways the page offers are the app's, never the account's: an
account with a password and one without see the same forms; a wrong password on
an account without one reads like any wrong password.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable
from html import unescape
from typing import Any

import httpx
import pytest

from apiclient import signup
from federation.rig.faults import FaultyOP
from federation.rig.node_op import Account
from oidc._support import PASSWORD, Form, forms
from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services
from oneauth.settings import Settings
from softauthn import SoftAuthenticator
from test_webauthn_api import register_passkey

from ._finish import (
    Hosted,
    count,
    follow_to_client,
    hosted_app,
    id_token_at_client,
    login_page_start,
    other_browser,
    rows,
    secret_register,
    to_upstream,
)

_CODE = re.compile(r"^\s*(\d{6})\s*$", re.MULTILINE)


@pytest.fixture
async def upstream_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


@pytest.fixture
def mailbox(services: Services) -> MemoryBackend:
    assert services.delivery is not None
    backend = services.delivery.backend
    assert isinstance(backend, MemoryBackend)
    backend.messages.clear()
    return backend


async def mailed_code(services: Services, app: AppRecord, mailbox: MemoryBackend, to: str) -> str:
    assert services.delivery is not None
    await services.delivery.deliver_app(app)
    sent = mailbox.to(to)
    assert sent, f"nothing mailed to {to}"
    match = _CODE.search(sent[-1].text)
    assert match, sent[-1].text
    return match.group(1)


@pytest.fixture
def linkable(
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    faulty_op: FaultyOP,
) -> Callable[..., Hosted]:
    def make(passwordless: bool = True) -> Hosted:
        return hosted_app(
            settings,
            services,
            provision,
            kind="oidc",
            issuer=faulty_op.issuer,
            register=secret_register(faulty_op.register_client, {}),
            app_settings={"passwordless": passwordless},
        )

    return make


async def local_user(
    client: httpx.AsyncClient, services: Services, hosted: Hosted, *, password: bool
) -> str:
    """A verified local account, with a password or without one."""
    email = f"local-{secrets.token_hex(4)}@example.com"
    if password:
        made = await client.post(
            f"{hosted.base}/v1/signup", json={"email": email, "password": PASSWORD}
        )
        assert made.status_code == 201, made.text
        client.cookies.clear()
    async with services.router.enter(hosted.app) as conn:
        await conn.execute(
            "INSERT INTO users (email, email_normalized, email_verified) VALUES ($1, $1, true)"
            " ON CONFLICT (email_normalized) DO UPDATE SET email_verified = true",
            email,
        )
    return email


async def link_page(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    op: FaultyOP,
    hosted: Hosted,
    email: str,
) -> tuple[httpx.Response, str]:
    """Through the login page and the upstream (its verified address ``email``): the
    link page, and the client's PKCE verifier."""
    start, verifier = await login_page_start(client, hosted)
    callback = await op.sign_in(upstream_http, await to_upstream(client, start), Account.new(email))
    page = await client.get(callback)
    assert page.status_code == 200, page.text
    assert "Link your account" in page.text
    return page, verifier


def by_decision(page: str, decision: str, *, with_field: str | None = None) -> Form:
    return next(
        f
        for f in forms(page)
        if ("decision", decision) in f.buttons and (with_field is None or with_field in f.fields)
    )


def shape(page: str) -> list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]]:
    """The forms of a page without their values: what a visitor can tell apart."""
    return [(f.action, tuple(sorted(f.fields)), tuple(f.buttons)) for f in forms(page)]


async def test_an_account_without_a_password_proves_itself_with_a_mailed_code_and_links(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    linkable: Callable[..., Hosted],
    services: Services,
    mailbox: MemoryBackend,
) -> None:
    hosted = linkable()
    email = await local_user(client, services, hosted, password=False)
    page, verifier = await link_page(client, upstream_http, faulty_op, hosted, email)
    send = by_decision(page.text, "send_code")
    sent = await client.post(send.action, data={**send.fields, "decision": "send_code"})
    assert sent.status_code == 200, sent.text
    assert "We sent a 6-digit code" in sent.text
    assert await count(services, hosted.app, "user_identities") == 0
    form = by_decision(sent.text, "link", with_field="code_flow")
    assert form.fields["proof"] == "email_code"
    # A wrong code: the page again, nothing linked.
    code = await mailed_code(services, hosted.app, mailbox, email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = await client.post(
        form.action, data={**form.fields, "code": wrong, "decision": "link"}
    )
    assert refused.status_code == 400
    assert "The code is not right" in refused.text
    assert await count(services, hosted.app, "user_identities") == 0
    # Another browser with the right code and this page's fields: no flow of its own.
    async with other_browser(client) as other:
        stolen = await other.post(
            form.action, data={**form.fields, "code": code, "decision": "link"}
        )
    assert stolen.status_code in (400, 403)
    assert await count(services, hosted.app, "user_identities") == 0
    # The right code, in this browser: linked, and the sign-in goes on to the client.
    again = by_decision(refused.text, "link", with_field="code_flow")
    right = await client.post(again.action, data={**again.fields, "code": code, "decision": "link"})
    done = await follow_to_client(client, right)
    _tokens, claims = await id_token_at_client(client, hosted, done, verifier)
    (local,) = await rows(
        services, hosted.app, "SELECT id::text AS id FROM users WHERE email = $1", email
    )
    assert claims["sub"] == local["id"]
    assert "otp" in claims["amr"]
    assert await count(services, hosted.app, "user_identities") == 1
    links = await rows(
        services, hosted.app, "SELECT outcome FROM audit_log WHERE event = 'federation.link'"
    )
    assert [r["outcome"] for r in links] == ["success"]


async def test_the_link_page_does_not_tell_which_factors_an_account_has(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    linkable: Callable[..., Hosted],
    services: Services,
) -> None:
    hosted = linkable()
    with_password = await local_user(client, services, hosted, password=True)
    without = await local_user(client, services, hosted, password=False)
    first, _ = await link_page(client, upstream_http, faulty_op, hosted, with_password)
    client.cookies.clear()
    second, _ = await link_page(client, upstream_http, faulty_op, hosted, without)
    assert shape(first.text) == shape(second.text)
    assert "No password on that account" not in second.text
    # A password tried on the account that has none: the words of any wrong password.
    form = by_decision(second.text, "link", with_field="password")
    tried = await client.post(
        form.action,
        data={**form.fields, "email": without, "password": PASSWORD, "decision": "link"},
    )
    assert tried.status_code == 400
    assert "The email address or password is not right." in tried.text
    assert shape(tried.text) == shape(
        (
            await client.post(
                form.action,
                data={**form.fields, "email": without, "password": "x", "decision": "link"},
            )
        ).text
    )
    assert await count(services, hosted.app, "user_identities") == 0


async def test_without_mailed_codes_the_page_offers_the_password_only(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    linkable: Callable[..., Hosted],
    services: Services,
    mailbox: MemoryBackend,
) -> None:
    hosted = linkable(passwordless=False)
    email = await local_user(client, services, hosted, password=False)
    page, _ = await link_page(client, upstream_http, faulty_op, hosted, email)
    assert all(("decision", "send_code") not in f.buttons for f in forms(page.text))
    assert "No password on that account" in page.text
    form = by_decision(page.text, "link", with_field="password")
    forced = await client.post(form.action, data={**form.fields, "decision": "send_code"})
    assert forced.status_code == 400
    forged = await client.post(
        form.action,
        data={
            **form.fields,
            "proof": "email_code",
            "code": "123456",
            "code_flow": "x" * 40,
            "decision": "link",
        },
    )
    assert forged.status_code == 400
    assert services.delivery is not None
    await services.delivery.deliver_app(hosted.app)
    assert mailbox.to(email) == []
    assert await count(services, hosted.app, "user_identities") == 0


async def test_app_as_mailed_code_proves_nothing_at_app_b(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    linkable: Callable[..., Hosted],
    services: Services,
    mailbox: MemoryBackend,
) -> None:
    a, b = linkable(), linkable()
    email = f"both-{secrets.token_hex(4)}@example.com"
    for hosted in (a, b):
        async with services.router.enter(hosted.app) as conn:
            await conn.execute(
                "INSERT INTO users (email, email_normalized, email_verified) VALUES ($1, $1, true)",
                email,
            )
    page_a, _ = await link_page(client, upstream_http, faulty_op, a, email)
    send = by_decision(page_a.text, "send_code")
    sent_a = await client.post(send.action, data={**send.fields, "decision": "send_code"})
    form_a = by_decision(sent_a.text, "link", with_field="code_flow")
    code_a = await mailed_code(services, a.app, mailbox, email)
    page_b, _ = await link_page(client, upstream_http, faulty_op, b, email)
    form_b = by_decision(page_b.text, "link", with_field="password")
    crossed = await client.post(
        form_b.action,
        data={
            **form_b.fields,
            "proof": "email_code",
            "code_flow": form_a.fields["code_flow"],
            "code": code_a,
            "decision": "link",
        },
    )
    assert crossed.status_code == 400, crossed.text
    assert await count(services, b.app, "user_identities") == 0


async def test_two_submits_of_the_right_code_at_once_link_once(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    linkable: Callable[..., Hosted],
    services: Services,
    mailbox: MemoryBackend,
) -> None:
    hosted = linkable()
    email = await local_user(client, services, hosted, password=False)
    page, _ = await link_page(client, upstream_http, faulty_op, hosted, email)
    send = by_decision(page.text, "send_code")
    sent = await client.post(send.action, data={**send.fields, "decision": "send_code"})
    form = by_decision(sent.text, "link", with_field="code_flow")
    code = await mailed_code(services, hosted.app, mailbox, email)
    data: dict[str, Any] = {**form.fields, "code": code, "decision": "link"}
    first, second = await asyncio.gather(
        client.post(form.action, data=data), client.post(form.action, data=data)
    )
    assert sorted([first.status_code < 400, second.status_code < 400]) == [False, True], (
        first.text,
        second.text,
    )
    assert await count(services, hosted.app, "user_identities") == 1
    links = await rows(
        services, hosted.app, "SELECT 1 FROM audit_log WHERE event = 'federation.link'"
    )
    assert len(links) == 1


# --- a passkey of the account -----------------------------------------------------------


def passkey_box(html: str) -> dict[str, str]:
    """The data attributes of the page's passkey element (templates/_passkey_signin.html)."""
    match = re.search(r"<div class=\"passkey\" hidden data-passkey-signin(.*?)>", html, re.S)
    assert match, html
    return {k: unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', match.group(1))}


async def passkey_account(
    client: httpx.AsyncClient, services: Services, hosted: Hosted
) -> tuple[str, SoftAuthenticator]:
    """A verified account whose only way in is a passkey (its password dropped)."""
    email = f"pk-{secrets.token_hex(4)}@example.com"
    body = await signup(client, hosted.app.app_id, email)
    key = SoftAuthenticator()
    made = await register_passkey(client, hosted.app.app_id, body["access_token"], key)
    assert made.status_code == 201, made.text
    client.cookies.clear()
    async with services.router.enter(hosted.app) as conn:
        await conn.execute(
            "UPDATE users SET password_hash = NULL, email_verified = true WHERE email = $1", email
        )
    return email, key


async def prove_with(
    client: httpx.AsyncClient, page: str, key: SoftAuthenticator
) -> tuple[httpx.Response, dict[str, Any]]:
    box = passkey_box(page)
    csrf = {box["csrf-field"]: box["csrf"]}
    options = await client.post(box["options-url"], data={**csrf, "flow_token": box["flow-token"]})
    assert options.status_code == 200, options.text
    public_key: dict[str, Any] = options.json()["publicKey"]
    assertion = key.get(public_key, "http://testserver")
    answer = await client.post(
        box["action"],
        data={**csrf, "flow_token": box["flow-token"], "assertion": json.dumps(assertion)},
    )
    return answer, public_key


async def test_an_account_with_only_a_passkey_proves_itself_with_it_and_links(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    linkable: Callable[..., Hosted],
    services: Services,
) -> None:
    hosted = linkable(passwordless=False)
    email, key = await passkey_account(client, services, hosted)
    page, verifier = await link_page(client, upstream_http, faulty_op, hosted, email)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    box = passkey_box(page.text)
    assert box["options-url"] == f"{hosted.issuer}/federation/link/passkey/options"
    # Without the page's CSRF token: a problem, no challenge.
    forged = await client.post(box["options-url"], data={"flow_token": box["flow-token"]})
    assert forged.status_code == 400
    answer, public_key = await prove_with(client, page.text, key)
    # The options name no credential: they tell nothing about the account's passkeys.
    assert public_key.get("allowCredentials", []) == []
    done = await follow_to_client(client, answer)
    _tokens, claims = await id_token_at_client(client, hosted, done, verifier)
    (local,) = await rows(
        services, hosted.app, "SELECT id::text AS id FROM users WHERE email = $1", email
    )
    assert claims["sub"] == local["id"]
    assert await count(services, hosted.app, "user_identities") == 1


async def test_another_accounts_passkey_links_nothing(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    linkable: Callable[..., Hosted],
    services: Services,
) -> None:
    hosted = linkable(passwordless=False)
    email, _ = await passkey_account(client, services, hosted)
    _other, other_key = await passkey_account(client, services, hosted)
    page, _ = await link_page(client, upstream_http, faulty_op, hosted, email)
    answer, _ = await prove_with(client, page.text, other_key)
    assert answer.status_code == 400, answer.text
    assert "That passkey was not accepted here." in answer.text
    assert await count(services, hosted.app, "user_identities") == 0
    # Options for another browser's flow: none.
    async with other_browser(client) as other:
        box = passkey_box(page.text)
        refused = await other.post(
            box["options-url"],
            data={box["csrf-field"]: box["csrf"], "flow_token": box["flow-token"]},
        )
    assert refused.status_code in (400, 403), refused.text
