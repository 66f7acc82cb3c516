"""``keep_tokens`` (issue 14, F10): with the provider option on, the upstream's access
and refresh tokens are kept sealed on the identity, bound to app + provider +
identity, readable by the service, replaced on each sign-in, gone on unlink; off,
nothing is kept (and switching it off forgets what was kept).

The upstream is the rig's FaultyOP (correct by default), issuing refresh tokens;
its userinfo endpoint accepts only the access tokens it issued, so an unsealed
token that works there is the upstream's real one."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from federation.rig.faults import FaultyOP
from federation.rig.node_op import Account
from oidc._support import PASSWORD, forms, query
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.federation import providers, tokens
from oneauth.secretbox import SecretBoxError
from oneauth.services import Services
from oneauth.settings import Settings

from ._finish import LINK_URL, Hosted, hosted_app, rows, secret_register, to_upstream


@pytest.fixture
async def upstream_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


@pytest.fixture
def kept(
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    faulty_op: FaultyOP,
) -> Callable[..., Hosted]:
    faulty_op.refresh_tokens = True

    def make(keep_tokens: bool = True) -> Hosted:
        return hosted_app(
            settings,
            services,
            provision,
            kind="oidc",
            issuer=faulty_op.issuer,
            register=secret_register(faulty_op.register_client, {}),
            keep_tokens=keep_tokens,
            # An account with a verified address can also sign in by a mailed code,
            # so its identity may be unlinked (not the last way in).
            app_settings={"passwordless": True},
        )

    return make


async def sign_in(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    op: FaultyOP,
    hosted: Hosted,
    account: Account,
) -> dict[str, Any]:
    """A first-party start through the upstream: the token set."""
    client.cookies.clear()
    start = f"{hosted.issuer}/federation/{hosted.provider_id}/start?redirect_uri={LINK_URL}"
    callback = await op.sign_in(upstream_http, await to_upstream(client, start), account)
    answer = await client.get(callback)
    assert answer.status_code == 302, answer.text
    code = query(answer.headers["location"])["code"]
    done = await client.post(f"{hosted.base}/v1/federation/complete", json={"code": code})
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


async def kept_tokens(
    services: Services, hosted: Hosted, email: str | None
) -> dict[str, Any] | None:
    async with services.router.enter(hosted.app) as conn:
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
        return await tokens.of_user(
            conn, services.box, hosted.app.app_id, user_id, hosted.provider_id
        )


async def identity_row(services: Services, hosted: Hosted, email: str | None) -> dict[str, Any]:
    (row,) = await rows(
        services,
        hosted.app,
        "SELECT i.id, i.issuer, i.subject, i.tokens_sealed FROM user_identities i"
        " JOIN users u ON u.id = i.user_id WHERE u.email = $1",
        email,
    )
    return dict(row)


async def test_kept_tokens_are_sealed_bound_replaced_and_removed_on_unlink(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    kept: Callable[..., Hosted],
    services: Services,
) -> None:
    a = kept()
    account = Account.new()
    signed = await sign_in(client, upstream_http, faulty_op, a, account)
    issued = faulty_op.issued_tokens[-1]
    row = await identity_row(services, a, account.email)
    sealed = row["tokens_sealed"]
    assert sealed is not None
    # Not in the clear in the database, nor the ID token at all.
    for secret in (issued["access_token"], issued["refresh_token"], issued["id_token"]):
        assert secret not in sealed
    found = await kept_tokens(services, a, account.email)
    assert found is not None
    assert found["access_token"] == issued["access_token"]
    assert found["refresh_token"] == issued["refresh_token"]
    assert "id_token" not in found
    # The upstream's real token: its userinfo accepts it.
    info = await upstream_http.get(
        f"{faulty_op.issuer}/userinfo",
        headers={"authorization": f"Bearer {found['access_token']}"},
    )
    assert info.status_code == 200
    assert info.json()["sub"] == account.sub

    # Bound to the identity: moved to another user's identity row, it does not open.
    other = Account.new()
    await sign_in(client, upstream_http, faulty_op, a, other)
    async with services.router.enter(a.app) as conn:
        await conn.execute(
            "UPDATE user_identities SET tokens_sealed = $1 WHERE subject = $2", sealed, other.sub
        )
    assert await kept_tokens(services, a, other.email) is None
    # ... nor for another app (the same upstream account at app B: another row).
    b = kept()
    await sign_in(client, upstream_http, faulty_op, b, account)
    async with services.router.enter(b.app) as conn:
        await conn.execute("UPDATE user_identities SET tokens_sealed = $1", sealed)
    assert await kept_tokens(services, b, account.email) is None
    with pytest.raises(SecretBoxError):
        tokens.open_sealed(
            services.box, b.app.app_id, a.provider_id, row["issuer"], row["subject"], sealed
        )

    # Replaced by the next sign-in's tokens.
    await sign_in(client, upstream_http, faulty_op, a, account)
    again = await kept_tokens(services, a, account.email)
    assert again is not None
    assert again["access_token"] == faulty_op.issued_tokens[-1]["access_token"]
    assert again["access_token"] != found["access_token"]

    # Gone with the identity on unlink.
    signed = await sign_in(client, upstream_http, faulty_op, a, account)
    auth = {"authorization": f"Bearer {signed['access_token']}"}
    gone = await client.delete(f"{a.base}/v1/identities/{row['id']}", headers=auth)
    assert gone.status_code == 204, gone.text
    assert await kept_tokens(services, a, account.email) is None
    left = await rows(
        services, a.app, "SELECT tokens_sealed FROM user_identities WHERE subject = $1", account.sub
    )
    assert left == []


async def test_without_keep_tokens_nothing_is_kept_and_switching_it_off_forgets(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    kept: Callable[..., Hosted],
    services: Services,
    settings: Settings,
) -> None:
    off = kept(keep_tokens=False)
    account = Account.new()
    await sign_in(client, upstream_http, faulty_op, off, account)
    assert (await identity_row(services, off, account.email))["tokens_sealed"] is None
    assert await kept_tokens(services, off, account.email) is None
    pending = await rows(services, off.app, "SELECT tokens_sealed FROM federation_pending_links")
    assert pending == []

    on = kept()
    await sign_in(client, upstream_http, faulty_op, on, account)
    assert await kept_tokens(services, on, account.email) is not None
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, on.app.names),
    ):
        providers.update(
            conn, services.box, on.app.app_id, on.provider_id, allow_http=True, keep_tokens=False
        )
    assert (await identity_row(services, on, account.email))["tokens_sealed"] is None
    # And the next sign-in keeps nothing either.
    await sign_in(client, upstream_http, faulty_op, on, account)
    assert (await identity_row(services, on, account.email))["tokens_sealed"] is None


async def test_tokens_are_kept_on_an_identity_linked_by_proof(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    faulty_op: FaultyOP,
    kept: Callable[..., Hosted],
    services: Services,
) -> None:
    hosted = kept()
    email = f"local-{secrets.token_hex(4)}@example.com"
    signup = await client.post(
        f"{hosted.base}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert signup.status_code == 201
    async with services.router.enter(hosted.app) as conn:
        await conn.execute("UPDATE users SET email_verified = true WHERE email = $1", email)
    client.cookies.clear()
    start = f"{hosted.issuer}/federation/{hosted.provider_id}/start?redirect_uri={LINK_URL}"
    callback = await faulty_op.sign_in(
        upstream_http, await to_upstream(client, start), Account.new(email)
    )
    page = await client.get(callback)
    assert page.status_code == 200
    assert "Link your account" in page.text
    link = next(f for f in forms(page.text) if "password" in f.fields)
    done = await client.post(
        link.action, data={**link.fields, "email": email, "password": PASSWORD, "decision": "link"}
    )
    assert done.status_code in (302, 303), done.text
    found = await kept_tokens(services, hosted, email)
    assert found is not None
    assert found["access_token"] == faulty_op.issued_tokens[-1]["access_token"]
