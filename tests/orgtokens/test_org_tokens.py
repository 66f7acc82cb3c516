"""Issue 13, tokens: app roles, permissions and org-scoped tokens, org switching
on the refresh_token grant, org clients; against the live service and Postgres.

Org rows are written with plain SQL (``_support``); what is under test is what
the token endpoint does with them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from apiclient import confidential_client, default_client_id, signup
from conftest import Isolated
from oneauth.apps.models import AppRecord
from oneauth.oauth import clients
from oneauth.oauth.token import ORG_UNAVAILABLE
from oneauth.orgs import service as org_service
from oneauth.orgs.actor import OPERATOR
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.verifier import VerificationError

from ._support import (
    add_member,
    add_scope,
    grant_role,
    make_org,
    org_client,
    payload,
    refresh,
    refresh_token_used,
    remove_member,
    revoke_role,
    session_org,
    set_org_status,
)

ORG_CLAIMS = ("org_id", "org_slug", "org_roles", "org_permissions")


async def test_roles_claim_follows_the_users_roles_at_every_refresh(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    body = await signup(client, app.app_id, "roles@example.com")
    user_id, raw = body["user"]["id"], body["refresh_token"]
    assert "roles" not in payload(body["access_token"])  # no roles: no claim (small tokens)
    await grant_role(services, app.app_id, user_id, "editor", ["invoice:read", "invoice:write"])
    await grant_role(services, app.app_id, user_id, "auditor", ["invoice:read"])
    answer = await refresh(client, app.app_id, cid, raw)
    assert answer.status_code == 200, answer.text
    claims = payload(answer.json()["access_token"])
    assert claims["roles"] == ["auditor", "editor"]
    assert "permissions" not in claims  # not asked for
    assert not set(ORG_CLAIMS) & claims.keys()
    # A removed role is gone at the next refresh.
    await revoke_role(services, app.app_id, user_id, "editor")
    answer = await refresh(client, app.app_id, cid, answer.json()["refresh_token"])
    assert payload(answer.json()["access_token"])["roles"] == ["auditor"]
    # A new sign-in carries them too.
    login = await client.post(
        f"/apps/{app.app_id}/v1/login",
        json={"email": "roles@example.com", "password": "violet-Harbor-lantern-42"},
    )
    assert payload(login.json()["access_token"])["roles"] == ["auditor"]


@contextlib.contextmanager
def statements_sent(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The texts of every statement the service sends through its router meanwhile."""
    sent: list[str] = []
    enter = services.router.enter

    @contextlib.asynccontextmanager
    async def watched(record: AppRecord) -> AsyncIterator[asyncpg.Connection]:
        async with enter(record) as conn:

            def log(query: asyncpg.connection.LoggedQuery) -> None:
                sent.append(query.query)

            conn.add_query_logger(log)
            try:
                yield conn
            finally:
                conn.remove_query_logger(log)

    with monkeypatch.context() as patch:
        patch.setattr(services.router, "enter", watched)
        yield sent


async def _editor_here_owner_there(
    client: httpx.AsyncClient, services: Services, app: AppRecord, other: AppRecord
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same address signed up in both apps: an editor in ``app``, an owner in
    ``other`` (never read by ``app``'s requests). Their signup bodies."""
    body = await signup(client, app.app_id, "fold@example.com")
    await grant_role(services, app.app_id, body["user"]["id"], "editor", ["a:read"])
    theirs = await signup(client, other.app_id, "fold@example.com")
    await grant_role(services, other.app_id, theirs["user"]["id"], "owner", ["all"])
    return body, theirs


async def test_a_plain_refresh_reads_the_roles_in_its_rotation_statement(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without org and permissions the rotation's own statement reads the roles:
    # no claims statement (with many apps per connection every statement is
    # planned again on each call). With permissions asked, the claims query runs.
    app = provision()
    cid = await default_client_id(client, app.app_id)
    add_scope(settings, app, cid, "permissions")
    services.clients.on_change(app.app_id)
    body, _ = await _editor_here_owner_there(client, services, app, provision())

    with statements_sent(services, monkeypatch) as sent:
        asked = await refresh(client, app.app_id, cid, body["refresh_token"])
    assert asked.status_code == 200, asked.text
    claims = payload(asked.json()["access_token"])
    assert (claims["roles"], claims["permissions"]) == (["editor"], ["a:read"])
    assert len([q for q in sent if "FROM user_roles" in q]) == 2, sent  # rotation, claims

    with statements_sent(services, monkeypatch) as sent:
        plain = await refresh(client, app.app_id, cid, asked.json()["refresh_token"], scope="email")
    assert plain.status_code == 200, plain.text
    claims = payload(plain.json()["access_token"])
    assert claims["roles"] == ["editor"]
    assert "permissions" not in claims
    reading_roles = [q for q in sent if "FROM user_roles" in q]
    assert len(reading_roles) == 1, sent
    assert "WITH family AS" in reading_roles[0]


async def test_a_sign_in_starts_session_refresh_and_roles_in_one_statement(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every statement is planned again per call when a connection serves many
    # apps: a password sign-in folds what it can (bench/login). Session, first
    # refresh token and roles in one statement; the password re-check stamps
    # last_login_at; the throttle's clear and give-back in one.
    app, other = provision(), provision()
    body, theirs = await _editor_here_owner_there(client, services, app, other)
    credentials = {"email": "fold@example.com", "password": "violet-Harbor-lantern-42"}

    async def last_login(record: AppRecord, user_id: str) -> object:
        async with services.router.enter(record) as conn:
            return await conn.fetchval(
                "SELECT last_login_at FROM users WHERE id = $1::uuid", user_id
            )

    theirs_before = await last_login(other, theirs["user"]["id"])
    with statements_sent(services, monkeypatch) as sent:
        login = await client.post(f"/apps/{app.app_id}/v1/login", json=credentials)
    assert login.status_code == 200, login.text
    claims = payload(login.json()["access_token"])
    assert claims["roles"] == ["editor"]
    assert "permissions" not in claims
    flat = [" ".join(q.split()) for q in sent]
    roles = [q for q in flat if "FROM user_roles" in q]
    assert len(roles) == 1, flat
    assert "INSERT INTO sessions" in roles[0]
    assert "INSERT INTO refresh_tokens" in roles[0]
    assert len([q for q in flat if "INSERT INTO refresh_tokens" in q]) == 1, flat
    stamps = [q for q in flat if "last_login_at" in q]
    assert len(stamps) == 1, flat
    assert "password_hash = $2" in stamps[0]
    assert not [q for q in flat if q.startswith("SELECT password_hash FROM users")], flat
    assert len([q for q in flat if "DELETE FROM throttle" in q]) == 1, flat
    assert len(flat) <= 9, flat  # 13 before the folds
    # What the one statement wrote works: the refresh token rotates, the stamp is there.
    cid = await default_client_id(client, app.app_id)
    rotated = await refresh(client, app.app_id, cid, login.json()["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert payload(rotated.json()["access_token"])["sid"] == claims["sid"]
    assert await last_login(app, body["user"]["id"]) is not None
    assert await last_login(other, theirs["user"]["id"]) == theirs_before  # not their user

    # Permissions asked for (the client's scope): the claims statement of its own.
    add_scope(settings, app, cid, "permissions")
    services.clients.on_change(app.app_id)
    with statements_sent(services, monkeypatch) as sent:
        again = await client.post(f"/apps/{app.app_id}/v1/login", json=credentials)
    assert again.status_code == 200, again.text
    claims = payload(again.json()["access_token"])
    assert (claims["roles"], claims["permissions"]) == (["editor"], ["a:read"])
    reading = [q for q in sent if "FROM user_roles" in q]
    assert len(reading) == 1, sent
    assert "INSERT INTO sessions" not in reading[0]


async def test_permissions_when_the_scope_asks_or_the_policy_says(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    # By scope: the client may ask for "permissions"; a refresh narrowed without it drops them.
    app = provision()
    cid = await default_client_id(client, app.app_id)
    add_scope(settings, app, cid, "permissions")
    services.clients.on_change(app.app_id)
    body = await signup(client, app.app_id, "perm@example.com")
    await grant_role(services, app.app_id, body["user"]["id"], "editor", ["b:write", "a:read"])
    answer = await refresh(client, app.app_id, cid, body["refresh_token"])
    claims = payload(answer.json()["access_token"])
    assert "permissions" in claims["scope"].split()
    assert claims["permissions"] == ["a:read", "b:write"]
    narrowed = await refresh(client, app.app_id, cid, answer.json()["refresh_token"], scope="email")
    assert narrowed.status_code == 200, narrowed.text
    assert "permissions" not in payload(narrowed.json()["access_token"])

    # By policy (oneauth apps configure --set token_permissions=true): every token.
    other = provision(app_settings={"token_permissions": True})
    ocid = await default_client_id(client, other.app_id)
    body = await signup(client, other.app_id, "perm@example.com")
    await grant_role(services, other.app_id, body["user"]["id"], "viewer", ["a:read"])
    answer = await refresh(client, other.app_id, ocid, body["refresh_token"])
    assert payload(answer.json()["access_token"])["permissions"] == ["a:read"]


async def test_switching_org_in_session_and_losing_one(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    body = await signup(client, app.app_id, "switch@example.com")
    user_id, raw = body["user"]["id"], body["refresh_token"]
    x = await make_org(services, app.app_id, "xray")
    y = await make_org(services, app.app_id, "yankee")
    await add_member(services, app.app_id, x, user_id, ["member"])
    await add_member(services, app.app_id, y, user_id, ["admin"])

    # Into X by id: X's claims, and the family is for X now.
    answer = await refresh(client, app.app_id, cid, raw, organization_id=x)
    assert answer.status_code == 200, answer.text
    claims = payload(answer.json()["access_token"])
    assert (claims["org_id"], claims["org_slug"]) == (x, "xray")
    assert claims["org_roles"] == ["member"]
    assert claims["org_permissions"] == ["org:read"]
    sid = claims["sid"]
    assert await session_org(services, app.app_id, sid) == x
    # A plain refresh stays in X.
    answer = await refresh(client, app.app_id, cid, answer.json()["refresh_token"])
    assert payload(answer.json()["access_token"])["org_id"] == x

    # To Y by slug, no sign-in: Y's claims, same session.
    answer = await refresh(
        client, app.app_id, cid, answer.json()["refresh_token"], organization="yankee"
    )
    assert answer.status_code == 200, answer.text
    claims = payload(answer.json()["access_token"])
    assert (claims["org_id"], claims["org_slug"], claims["sid"]) == (y, "yankee", sid)
    assert claims["org_roles"] == ["admin"]
    assert claims["org_permissions"] == [
        "org:invitations:write",
        "org:members:write",
        "org:read",
        "org:settings:write",
    ]
    assert await session_org(services, app.app_id, sid) == y

    # Back to X, then the user leaves Y: switching to Y fails, the token is not
    # spent, and it still works for X.
    answer = await refresh(
        client, app.app_id, cid, answer.json()["refresh_token"], organization_id=x
    )
    current = answer.json()["refresh_token"]
    await remove_member(services, app.app_id, y, user_id)
    refused = await refresh(client, app.app_id, cid, current, organization_id=y)
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_request", "error_description": ORG_UNAVAILABLE}
    assert not await refresh_token_used(services, app.app_id, current)
    assert await session_org(services, app.app_id, sid) == x
    answer = await refresh(client, app.app_id, cid, current, organization_id=x)
    assert answer.status_code == 200, answer.text
    assert payload(answer.json()["access_token"])["org_id"] == x

    # The failure is audited with its reason (the answer does not tell it).
    async with services.router.app(app.app_id) as conn:
        row = await conn.fetchrow(
            "SELECT outcome, details FROM audit_log WHERE event = 'token.refresh'"
            " AND details->>'reason' = 'org_unavailable'"
        )
    assert row is not None
    assert row["outcome"] == "failure"
    assert '"not_member"' in row["details"]


async def test_unknown_suspended_and_foreign_orgs_get_one_answer_and_spend_nothing(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    body = await signup(client, app.app_id, "three@example.com")
    user_id, raw = body["user"]["id"], body["refresh_token"]
    member = await make_org(services, app.app_id, "member-of")
    suspended = await make_org(services, app.app_id, "asleep")
    stranger = await make_org(services, app.app_id, "stranger")
    await add_member(services, app.app_id, member, user_id)
    await add_member(services, app.app_id, suspended, user_id)
    await set_org_status(services, app.app_id, suspended, "suspended")
    asks = [
        {"organization_id": "org_" + "n" * 22},
        {"organization_id": "not-an-org-id"},
        {"organization": "no-such-slug"},
        {"organization_id": suspended},
        {"organization": "asleep"},
        {"organization_id": stranger},
    ]
    for ask in asks:
        refused = await refresh(client, app.app_id, cid, raw, **ask)
        assert refused.status_code == 400, (ask, refused.text)
        assert refused.json()["error_description"] == ORG_UNAVAILABLE, ask
    assert not await refresh_token_used(services, app.app_id, raw)
    both = await refresh(
        client, app.app_id, cid, raw, organization_id=member, organization="member-of"
    )
    assert both.status_code == 400
    assert both.json()["error"] == "invalid_request"
    answer = await refresh(client, app.app_id, cid, raw, organization_id=member)
    assert answer.status_code == 200, answer.text


async def test_plain_refresh_of_a_family_whose_org_is_gone_fails_and_the_family_switches(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    body = await signup(client, app.app_id, "gone@example.com")
    user_id = body["user"]["id"]
    x = await make_org(services, app.app_id, "stays")
    y = await make_org(services, app.app_id, "leaves")
    await add_member(services, app.app_id, x, user_id)
    await add_member(services, app.app_id, y, user_id)
    answer = await refresh(client, app.app_id, cid, body["refresh_token"], organization_id=y)
    current = answer.json()["refresh_token"]

    # Suspended: a plain refresh fails (never silently drops to no org).
    await set_org_status(services, app.app_id, y, "suspended")
    refused = await refresh(client, app.app_id, cid, current)
    assert refused.status_code == 400
    assert refused.json()["error_description"] == ORG_UNAVAILABLE
    await set_org_status(services, app.app_id, y, "active")
    answer = await refresh(client, app.app_id, cid, current)
    assert answer.status_code == 200, answer.text
    current = answer.json()["refresh_token"]

    # Left: the same; the unspent token switches to X.
    await remove_member(services, app.app_id, y, user_id)
    refused = await refresh(client, app.app_id, cid, current)
    assert refused.status_code == 400
    assert not await refresh_token_used(services, app.app_id, current)
    answer = await refresh(client, app.app_id, cid, current, organization_id=x)
    assert answer.status_code == 200, answer.text
    assert payload(answer.json()["access_token"])["org_id"] == x


async def test_concurrent_switch_and_refresh_of_one_token(
    isolated: Isolated, provision: Callable[..., AppRecord]
) -> None:
    """Documented: two uses of one token at once both succeed with one successor
    (the second is a retry of the first's rotation, S1), and a switch ends in its
    org whichever ran first; a switch that fails never spends the token, so a
    plain refresh racing it always succeeds."""
    http, services = isolated.client, isolated.services
    app = provision()
    cid = await default_client_id(http, app.app_id)
    body = await signup(http, app.app_id, "race@example.com")
    user_id = body["user"]["id"]
    x = await make_org(services, app.app_id, "race-x")
    y = await make_org(services, app.app_id, "race-y")
    left = await make_org(services, app.app_id, "race-left")
    for org in (x, y):
        await add_member(services, app.app_id, org, user_id)
    answer = await refresh(http, app.app_id, cid, body["refresh_token"], organization_id=x)
    current = answer.json()["refresh_token"]
    sid = payload(answer.json()["access_token"])["sid"]

    for _ in range(3):
        switch, plain = await asyncio.gather(
            refresh(http, app.app_id, cid, current, organization_id=y),
            refresh(http, app.app_id, cid, current),
        )
        assert [switch.status_code, plain.status_code] == [200, 200], (switch.text, plain.text)
        assert switch.json()["refresh_token"] == plain.json()["refresh_token"]
        # The switch either ran first, or second as a retry that switched again.
        assert payload(switch.json()["access_token"])["org_id"] == y
        assert payload(plain.json()["access_token"])["org_id"] in (x, y)
        assert await session_org(services, app.app_id, sid) == y
        current = switch.json()["refresh_token"]
        # Back to X for the next round.
        answer = await refresh(http, app.app_id, cid, current, organization_id=x)
        current = answer.json()["refresh_token"]

    await add_member(services, app.app_id, left, user_id)
    await remove_member(services, app.app_id, left, user_id)
    for _ in range(3):
        switch, plain = await asyncio.gather(
            refresh(http, app.app_id, cid, current, organization_id=left),
            refresh(http, app.app_id, cid, current),
        )
        assert plain.status_code == 200, plain.text
        assert switch.status_code == 400
        assert switch.json()["error"] in ("invalid_request", "invalid_grant")
        assert payload(plain.json()["access_token"])["org_id"] == x
        current = plain.json()["refresh_token"]
    answer = await refresh(http, app.app_id, cid, current)
    assert answer.status_code == 200, answer.text


async def test_cross_app_org_tokens_and_ids_are_useless_at_the_other_app(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    a, b = provision(), provision()
    cid_a = await default_client_id(client, a.app_id)
    cid_b = await default_client_id(client, b.app_id)
    body_a = await signup(client, a.app_id, "same@example.com")
    body_b = await signup(client, b.app_id, "same@example.com")
    acme_a = await make_org(services, a.app_id, "acme")
    acme_b = await make_org(services, b.app_id, "acme")
    await add_member(services, a.app_id, acme_a, body_a["user"]["id"], ["admin"])
    await add_member(services, b.app_id, acme_b, body_b["user"]["id"], ["member"])
    in_a = await refresh(client, a.app_id, cid_a, body_a["refresh_token"], organization_id=acme_a)
    assert in_a.status_code == 200, in_a.text
    a_tokens = in_a.json()

    # A's org-scoped refresh token at B (with A's client id, or B's): unknown there.
    for cid in (cid_a, cid_b):
        refused = await refresh(client, b.app_id, cid, a_tokens["refresh_token"])
        assert refused.status_code in (400, 401), refused.text
        assert refused.json()["error"] in ("invalid_grant", "invalid_client")
    # A's org id at B names nothing; B's token is not spent and B's own acme is another org.
    refused = await refresh(
        client, b.app_id, cid_b, body_b["refresh_token"], organization_id=acme_a
    )
    assert refused.status_code == 400
    assert not await refresh_token_used(services, b.app_id, body_b["refresh_token"])
    in_b = await refresh(client, b.app_id, cid_b, body_b["refresh_token"], organization="acme")
    b_claims = payload(in_b.json()["access_token"])
    assert (b_claims["org_id"], b_claims["org_roles"]) == (acme_b, ["member"])
    # A's org-scoped access token does not verify at B.
    async with services.router.app(b.app_id) as conn:
        keys_b = await services.keys.get(b, conn)
    with pytest.raises(VerificationError):
        keys_b.verifier.verify(a_tokens["access_token"])
    # A's family still works (nothing at B touched it).
    assert (await refresh(client, a.app_id, cid_a, a_tokens["refresh_token"])).status_code == 200


async def _client_token(
    http: httpx.AsyncClient, app_id: str, client_id: str, secret: str
) -> httpx.Response:
    return await http.post(
        f"/apps/{app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )


async def test_org_client_gets_tokens_for_its_org_only(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    a, b = provision(), provision()
    acme_a = await make_org(services, a.app_id, "acme")
    await make_org(services, b.app_id, "acme")
    org_cid, secret = org_client(settings, a, acme_a)
    answer = await _client_token(client, a.app_id, org_cid, secret)
    assert answer.status_code == 200, answer.text
    claims = payload(answer.json()["access_token"])
    assert (claims["org_id"], claims["org_slug"]) == (acme_a, "acme")
    assert claims["grant"] == "client_credentials"
    assert claims["sub"] == org_cid
    assert not {"roles", "org_roles", "org_permissions", "permissions"} & claims.keys()
    # A plain client of the same app: no org.
    plain_id, plain_secret = confidential_client(settings, a)
    plain = await _client_token(client, a.app_id, plain_id, plain_secret)
    assert "org_id" not in payload(plain.json()["access_token"])
    # Suspended org: no token at once.
    await set_org_status(services, a.app_id, acme_a, "suspended")
    refused = await _client_token(client, a.app_id, org_cid, secret)
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    await set_org_status(services, a.app_id, acme_a, "active")
    assert (await _client_token(client, a.app_id, org_cid, secret)).status_code == 200
    # A's org client at B: unknown client.
    cross = await _client_token(client, b.app_id, org_cid, secret)
    assert cross.status_code == 401
    assert cross.json()["error"] == "invalid_client"
    # Registering a client for another app's org id is refused.
    with pytest.raises(clients.ClientError, match="no organization"):
        org_client(settings, b, acme_a)


async def test_introspection_reports_the_org_claims(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    body = await signup(client, app.app_id, "intro@example.com")
    org = await make_org(services, app.app_id, "intro")
    await add_member(services, app.app_id, org, body["user"]["id"], ["admin"])
    await grant_role(services, app.app_id, body["user"]["id"], "editor")
    tokens = (
        await refresh(client, app.app_id, cid, body["refresh_token"], organization_id=org)
    ).json()
    rs_id, rs_secret = confidential_client(settings, app)
    for token, kind in (
        (tokens["access_token"], "Bearer"),
        (tokens["refresh_token"], "refresh_token"),
    ):
        seen = await client.post(
            f"/apps/{app.app_id}/oauth/introspect", data={"token": token}, auth=(rs_id, rs_secret)
        )
        assert seen.status_code == 200, seen.text
        info = seen.json()
        assert info["active"] is True
        assert info["token_type"] == kind
        assert info["org_id"] == org
        if kind == "Bearer":
            assert info["org_slug"] == "intro"
            assert info["org_roles"] == ["admin"]
            assert "org:members:write" in info["org_permissions"]
            assert info["roles"] == ["editor"]


async def test_token_size_at_50_roles(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    """README figure: an org-scoped access token of a user with 50 app roles
    (names like ``billing-admin-07``), admin of the org, without permissions."""
    app = provision()
    cid = await default_client_id(client, app.app_id)
    body = await signup(client, app.app_id, "fifty@example.com")
    before = len(body["access_token"])
    for n in range(50):
        await grant_role(services, app.app_id, body["user"]["id"], f"billing-admin-{n:02d}")
    org = await make_org(services, app.app_id, "fifty")
    await add_member(services, app.app_id, org, body["user"]["id"], ["admin"])
    answer = await refresh(client, app.app_id, cid, body["refresh_token"], organization_id=org)
    token = answer.json()["access_token"]
    assert len(payload(token)["roles"]) == 50
    # ~1.3 KB more than a token without roles; far below the 8 KB header limits.
    assert len(token) - before < 1800, len(token) - before
    assert len(token) < 3000, len(token)
    print(f"access token: {before} bytes without roles, {len(token)} with 50 roles and an org")


async def test_with_the_org_services_leaving_another_org_keeps_the_family(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    """Through ``orgs.service`` (what the CLI and /v1 call): removing the user from
    Y leaves a family that is at X alone (the switch to Y then fails, X works);
    removing them from the org a family is at ends that family (the service's
    choice, reason ``org_membership_ended``)."""
    app = provision()
    cid = await default_client_id(client, app.app_id)
    first = await signup(client, app.app_id, "svc@example.com")
    user_id = first["user"]["id"]
    async with services.router.app(app.app_id) as conn:
        x = await org_service.create(conn, name="Xray", creator=user_id, actor=OPERATOR)
        y = await org_service.create(conn, name="Yankee", creator=user_id, actor=OPERATOR)
    at_x = await refresh(client, app.app_id, cid, first["refresh_token"], organization_id=x.id)
    assert payload(at_x.json()["access_token"])["org_roles"] == ["admin"]
    second = await client.post(
        f"/apps/{app.app_id}/v1/login",
        json={"email": "svc@example.com", "password": "violet-Harbor-lantern-42"},
    )
    at_y = await refresh(
        client, app.app_id, cid, second.json()["refresh_token"], organization="yankee"
    )
    assert payload(at_y.json()["access_token"])["org_id"] == y.id

    async with services.router.app(app.app_id) as conn:
        ended = await org_service.remove_member(conn, y.id, user_id, actor=OPERATOR)
    assert ended == 1  # the family at Y
    x_token = at_x.json()["refresh_token"]
    refused = await refresh(client, app.app_id, cid, x_token, organization_id=y.id)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    assert (await refresh(client, app.app_id, cid, x_token)).status_code == 200
    gone = await refresh(client, app.app_id, cid, at_y.json()["refresh_token"])
    assert gone.status_code == 400
    assert gone.json()["error"] == "invalid_grant"


async def test_an_org_that_asks_for_mfa_gets_no_tokens_from_a_one_factor_family(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    """A refresh cannot step up: a switch into an org with mfa_required, or a refresh
    of a family at an org that began to require it, is refused without spending the
    token, which still serves the user's other orgs (the authorization request with
    organization_id is the way in: it asks for the second factor)."""
    app = provision()
    cid = await default_client_id(client, app.app_id)
    body = await signup(client, app.app_id, "strict-org@example.com")  # amr ["pwd"]
    user_id, raw = body["user"]["id"], body["refresh_token"]
    easy = await make_org(services, app.app_id, "easy")
    strict = await make_org(services, app.app_id, "strict")
    for org in (easy, strict):
        await add_member(services, app.app_id, org, user_id, ["member"])
    async with services.router.app(app.app_id) as conn:
        await conn.execute("UPDATE organizations SET mfa_required = true WHERE id = $1", strict)

    refused = await refresh(client, app.app_id, cid, raw, organization_id=strict)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_request"
    assert "second factor" in refused.json()["error_description"]
    assert not await refresh_token_used(services, app.app_id, raw)
    answer = await refresh(client, app.app_id, cid, raw, organization_id=easy)
    assert answer.status_code == 200, answer.text
    assert payload(answer.json()["access_token"])["org_id"] == easy

    # The org the family is at begins to ask for a second factor: the next refresh fails.
    async with services.router.app(app.app_id) as conn:
        await conn.execute("UPDATE organizations SET mfa_required = true WHERE id = $1", easy)
    latest = answer.json()["refresh_token"]
    again = await refresh(client, app.app_id, cid, latest)
    assert again.status_code == 400
    assert "second factor" in again.json()["error_description"]
    assert not await refresh_token_used(services, app.app_id, latest)
    async with services.router.app(app.app_id) as conn:
        reasons = await conn.fetch(
            "SELECT details->>'reason' AS reason FROM audit_log"
            " WHERE event = 'token.refresh' AND outcome = 'failure'"
        )
    assert [r["reason"] for r in reasons] == ["org_mfa_required", "org_mfa_required"]
