"""The first-party organization API, /v1/orgs (issue 13), on a real Postgres.

Every route, its 4xx answers in the one problem+json format, and what a member
may do decided by org permissions (never a role name): a member without
``org:members:write`` removes nobody, an admin may, and so may a custom role that
carries the permission, within the permissions it holds itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from conftest import Isolated
from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.orgs import domains
from oneauth.orgs import service as orgs
from oneauth.orgs.actor import OPERATOR
from oneauth.services import Services
from orgs._surfaces import (
    Person,
    invitation_token,
    members_of,
    org_of,
    person,
    problem,
    unique_email,
)

ORGS = "/apps/{app}/v1/orgs"


def url(app: AppRecord, path: str = "") -> str:
    return ORGS.format(app=app.app_id) + path


async def test_creating_an_org_needs_the_self_service_setting(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    closed = provision()
    ada = await person(client, services, closed)
    refused = await client.post(url(closed), json={"name": "Acme"}, headers=ada.auth)
    problem(refused, 403, "feature_disabled")

    app = provision(app_settings={"org_self_service": True})
    ada = await person(client, services, app)
    made = await client.post(url(app), json={"name": "Acme", "slug": "acme"}, headers=ada.auth)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["slug"] == "acme"
    assert body["name"] == "Acme"
    assert body["id"].startswith("org_")
    # The creator is its admin, with every org permission the admin role carries.
    assert body["roles"] == ["admin"]
    assert {"org:read", "org:members:write", "org:invitations:write"} <= set(body["permissions"])
    taken = await client.post(url(app), json={"name": "Other", "slug": "acme"}, headers=ada.auth)
    problem(taken, 409, "org_slug_taken")
    bad = await client.post(url(app), json={"name": "Bad", "slug": "Not A Slug"}, headers=ada.auth)
    assert problem(bad, 422, "validation_failed")["field"] == "slug"
    empty = await client.post(url(app), json={"name": ""}, headers=ada.auth)
    assert problem(empty, 422, "validation_failed")["field"] == "name"
    extra = await client.post(url(app), json={"name": "X", "owner": "me"}, headers=ada.auth)
    problem(extra, 422, "validation_failed")
    # Without a slug one is made from the name.
    derived = await client.post(url(app), json={"name": "Blue Sky Ltd"}, headers=ada.auth)
    assert derived.status_code == 201, derived.text
    assert derived.json()["slug"].startswith("blue-sky")


async def test_my_orgs_and_one_org(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    ada, bob = await person(client, services, app), await person(client, services, app)
    acme = await org_of(services, app, "acme", admin=ada, members=((bob, None),))
    other = await org_of(services, app, "globex")

    mine = await client.get(url(app), headers=bob.auth)
    assert mine.status_code == 200, mine.text
    assert [(o["slug"], o["roles"], o["permissions"]) for o in mine.json()["items"]] == [
        ("acme", ["member"], ["org:read"])
    ]
    shown = await client.get(url(app, f"/{acme.id}"), headers=ada.auth)
    assert shown.status_code == 200, shown.text
    assert shown.json()["roles"] == ["admin"]
    assert shown.json()["status"] == "active"
    # Existing but not a member, unknown, malformed: the same 404.
    for org_id in (other.id, "org_" + "x" * 22, "not-an-org", "org_" + "y" * 300):
        problem(await client.get(url(app, f"/{org_id}"), headers=bob.auth), 404, "org_not_found")
    # A slug names nothing on this API (ids only would be stricter, but a member's own
    # slug is no secret): a non-member learns nothing from it either.
    problem(await client.get(url(app, "/globex"), headers=bob.auth), 404, "org_not_found")


async def test_the_routes_need_the_users_own_first_party_token(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    ada = await person(client, services, app)
    acme = await org_of(services, app, "acme", admin=ada)
    for method, path, body in (
        ("GET", "", None),
        ("POST", "", {"name": "Acme"}),
        ("GET", "/offers", None),
        ("GET", f"/{acme.id}", None),
        ("GET", f"/{acme.id}/members", None),
        ("PATCH", f"/{acme.id}/members/{ada.id}", {"roles": ["member"]}),
        ("DELETE", f"/{acme.id}/members/{ada.id}", None),
        ("POST", f"/{acme.id}/invitations", {"email": "x@example.com"}),
        ("GET", f"/{acme.id}/invitations", None),
        ("POST", f"/{acme.id}/join", None),
    ):
        # The body is valid: what is refused is the missing or bad token.
        missing = await client.request(method, url(app, path), json=body)
        problem(missing, 401, "unauthorized")
        bad = await client.request(
            method, url(app, path), headers={"authorization": "Bearer x.y.z"}, json=body
        )
        problem(bad, 401, "invalid_token")
    accept = await client.post(
        f"/apps/{app.app_id}/v1/invitations/accept", json={"token": "x" * 43}
    )
    problem(accept, 401, "unauthorized")
    # Signed out: the session behind the token ended, the token is refused.
    out = await client.post(f"/apps/{app.app_id}/v1/logout", headers=ada.auth)
    assert out.status_code == 204
    problem(await client.get(url(app), headers=ada.auth), 401, "invalid_token")


async def test_members_come_in_cursor_pages(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    ada = await person(client, services, app, "a-admin@example.com")
    rest = [await person(client, services, app, f"m{i}-{app.app_id}@example.com") for i in range(4)]
    acme = await org_of(services, app, "acme", admin=ada, members=tuple((p, None) for p in rest))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get(url(app, f"/{acme.id}/members"), params=params, headers=ada.auth)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [m["email"] for m in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted([ada.email, *(p.email for p in rest)])
    first = (await client.get(url(app, f"/{acme.id}/members"), headers=ada.auth)).json()["items"][0]
    assert first["roles"] == ["admin"]
    assert first["joined_via"] == "created"
    for params, name in (
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "!!"}, "cursor"),
        ({"cursor": "////"}, "cursor"),
    ):
        bad = await client.get(url(app, f"/{acme.id}/members"), params=params, headers=ada.auth)
        assert problem(bad, 422, "validation_failed")["field"] == name, params


async def test_managing_members_needs_the_permission_not_a_role_name(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    ada, bob, cat, dan = [await person(client, services, app) for _ in range(4)]
    acme = await org_of(
        services, app, "acme", admin=ada, members=((bob, None), (cat, None), (dan, None))
    )
    # A custom role of this org: it may manage members, nothing else.
    async with services.router.enter(app) as conn:
        await orgs.create_custom_role(
            conn, acme.id, "people-lead", ["org:read", "org:members:write"], actor=OPERATOR
        )
    member = url(app, f"/{acme.id}/members/")

    # A plain member (org:read) changes and removes nobody.
    problem(await client.delete(member + cat.id, headers=bob.auth), 403, "org_permission_required")
    patch = await client.patch(member + cat.id, json={"roles": ["admin"]}, headers=bob.auth)
    problem(patch, 403, "org_permission_required")
    # The admin may: bob becomes a people-lead.
    made = await client.patch(member + bob.id, json={"roles": ["people-lead"]}, headers=ada.auth)
    assert made.status_code == 200, made.text
    assert made.json()["roles"] == ["people-lead"]
    assert made.json()["email"] == bob.email
    # The custom role carries org:members:write: bob removes cat.
    assert (await client.delete(member + cat.id, headers=bob.auth)).status_code == 204
    assert cat.id not in await members_of(services, app, acme.id)
    # ... but hands out nothing beyond his own permissions, and touches no admin.
    up = await client.patch(member + dan.id, json={"roles": ["admin"]}, headers=bob.auth)
    assert problem(up, 403, "org_permission_required")["permission"] == "org:invitations:write"
    problem(await client.delete(member + ada.id, headers=bob.auth), 403, "org_permission_required")
    problem(
        await client.patch(member + bob.id, json={"roles": ["admin"]}, headers=bob.auth),
        403,
        "org_permission_required",
    )
    # Not members, unknown roles, bad bodies.
    problem(await client.delete(member + cat.id, headers=ada.auth), 404, "member_not_found")
    problem(await client.delete(member + "not-a-uuid", headers=ada.auth), 404, "member_not_found")
    unknown = await client.patch(member + dan.id, json={"roles": ["owner"]}, headers=ada.auth)
    problem(unknown, 404, "role_not_found")
    for body in ({}, {"roles": "admin"}, {"roles": ["x"] * 51}):
        bad = await client.patch(member + dan.id, json=body, headers=ada.auth)
        assert problem(bad, 422, "validation_failed")["field"] == "roles", body
    bad = await client.patch(member + dan.id, json={"roles": ["bad role"]}, headers=ada.auth)
    assert "roles[0]" in problem(bad, 422, "validation_failed")["detail"]
    assert (await members_of(services, app, acme.id))[dan.id] == ["member"]


async def test_leaving_and_the_last_manager(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    ada, bob = await person(client, services, app), await person(client, services, app)
    acme = await org_of(services, app, "acme", admin=ada, members=((bob, None),))
    member = url(app, f"/{acme.id}/members/")
    # The only admin can neither leave nor be demoted: nobody would manage the org.
    problem(await client.delete(member + ada.id, headers=ada.auth), 409, "last_org_manager")
    demote = await client.patch(member + ada.id, json={"roles": ["member"]}, headers=ada.auth)
    problem(demote, 409, "last_org_manager")
    # A member leaves without any permission.
    assert (await client.delete(member + bob.id, headers=bob.auth)).status_code == 204
    problem(await client.get(url(app, f"/{acme.id}"), headers=bob.auth), 404, "org_not_found")
    problem(await client.delete(member + bob.id, headers=bob.auth), 404, "org_not_found")
    # With a second admin the first may go.
    cat = await person(client, services, app)
    async with services.router.enter(app) as conn:
        await orgs.add_member(conn, acme.id, cat.uuid, roles=["admin"], actor=OPERATOR)
    assert (await client.delete(member + ada.id, headers=ada.auth)).status_code == 204
    assert set(await members_of(services, app, acme.id)) == {cat.id}


async def test_invitations_list_revoke_and_accept(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    app = provision()
    ada, bob = await person(client, services, app), await person(client, services, app)
    acme = await org_of(services, app, "acme", admin=ada, members=((bob, None),))
    invitations = url(app, f"/{acme.id}/invitations")
    accept = f"/apps/{app.app_id}/v1/invitations/accept"
    guest = unique_email("guest")

    problem(
        await client.post(invitations, json={"email": guest}, headers=bob.auth),
        403,
        "org_permission_required",
    )
    problem(await client.get(invitations, headers=bob.auth), 403, "org_permission_required")
    bad = await client.post(invitations, json={"email": "no"}, headers=ada.auth)
    assert problem(bad, 422, "validation_failed")["field"] == "email"
    made = await client.post(invitations, json={"email": guest}, headers=ada.auth)
    assert made.status_code == 201, made.text
    assert made.json()["email"] == guest
    assert made.json()["roles"] == []  # none named: the org's default role when accepted
    assert "token" not in made.json()  # only the mail carries it
    listed = await client.get(invitations, headers=ada.auth)
    assert [i["id"] for i in listed.json()["items"]] == [made.json()["id"]]
    token = await invitation_token(services, mailbox, app, guest)

    # Someone else's account: refused, and the invitation stays open.
    problem(
        await client.post(accept, json={"token": token}, headers=bob.auth),
        403,
        "invitation_email_mismatch",
    )
    # The invitee, address not verified yet: refused until verified.
    invitee = await person(client, services, app, guest, verified=False)
    problem(
        await client.post(accept, json={"token": token}, headers=invitee.auth),
        403,
        "email_not_verified",
    )
    async with services.router.enter(app) as conn:
        await conn.execute("UPDATE users SET email_verified = true WHERE id = $1", invitee.uuid)
    joined = await client.post(accept, json={"token": token}, headers=invitee.auth)
    assert joined.status_code == 200, joined.text
    assert joined.json()["id"] == acme.id
    assert joined.json()["roles"] == ["member"]
    problem(
        await client.post(accept, json={"token": token}, headers=invitee.auth),
        400,
        "invitation_invalid",
    )
    assert (await client.get(invitations, headers=ada.auth)).json()["items"] == []

    # Revoked: the link does nothing.
    other = unique_email("other")
    made = await client.post(invitations, json={"email": other}, headers=ada.auth)
    revoke = f"{invitations}/{made.json()['id']}"
    problem(await client.delete(revoke, headers=bob.auth), 403, "org_permission_required")
    assert (await client.delete(revoke, headers=ada.auth)).status_code == 204
    problem(await client.delete(revoke, headers=ada.auth), 404, "invitation_not_found")
    problem(
        await client.delete(f"{invitations}/nope", headers=ada.auth), 404, "invitation_not_found"
    )
    revoked = await invitation_token(services, mailbox, app, other)
    late = await person(client, services, app, other)
    problem(
        await client.post(accept, json={"token": revoked}, headers=late.auth),
        400,
        "invitation_invalid",
    )
    problem(
        await client.post(accept, json={"token": ""}, headers=late.auth), 422, "validation_failed"
    )


async def test_an_inviter_gives_no_role_beyond_their_own(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    ada, bob = await person(client, services, app), await person(client, services, app)
    acme = await org_of(services, app, "acme", admin=ada)
    async with services.router.enter(app) as conn:
        await orgs.create_custom_role(
            conn, acme.id, "recruiter", ["org:read", "org:invitations:write"], actor=OPERATOR
        )
        await orgs.add_member(conn, acme.id, bob.uuid, roles=["recruiter"], actor=OPERATOR)
    invitations = url(app, f"/{acme.id}/invitations")
    fine = await client.post(
        invitations, json={"email": unique_email(), "roles": ["member"]}, headers=bob.auth
    )
    assert fine.status_code == 201, fine.text
    beyond = await client.post(
        invitations, json={"email": unique_email(), "roles": ["admin"]}, headers=bob.auth
    )
    assert problem(beyond, 403, "org_permission_required")["permission"] == "org:members:write"


async def test_two_concurrent_accepts_of_one_invitation_join_once(
    isolated: Isolated, provision: Callable[..., AppRecord]
) -> None:
    services, client = isolated.services, isolated.client
    app = provision()
    assert services.delivery is not None
    mailbox = services.delivery.backend
    assert isinstance(mailbox, MemoryBackend)
    ada = await person(client, services, app)
    acme = await org_of(services, app, "acme", admin=ada)
    guest = unique_email("race")
    made = await client.post(
        url(app, f"/{acme.id}/invitations"), json={"email": guest}, headers=ada.auth
    )
    assert made.status_code == 201, made.text
    token = await invitation_token(services, mailbox, app, guest)
    invitee = await person(client, services, app, guest)
    # Two sessions of the invitee (two devices) accept at once.
    second = await client.post(
        f"/apps/{app.app_id}/v1/login",
        json={"email": guest, "password": "violet-Harbor-lantern-42"},
    )
    other = Person(app, guest, invitee.id, second.json()["access_token"])
    answers = await asyncio.gather(
        *(
            client.post(
                f"/apps/{app.app_id}/v1/invitations/accept", json={"token": token}, headers=who.auth
            )
            for who in (invitee, other)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
    problem(next(a for a in answers if a.status_code == 400), 400, "invitation_invalid")
    assert (await members_of(services, app, acme.id))[invitee.id] == ["member"]
    async with services.router.enter(app) as conn:
        joins = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE event = 'org.member.add'"
            " AND details->>'user_id' = $1",
            invitee.id,
        )
    assert joins == 1


async def test_domain_offers_only_for_a_verified_address(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    domain = f"{app.app_id}.example.com"
    acme = await org_of(services, app, "acme")
    async with services.router.enter(app) as conn:
        await domains.add(conn, acme.id, domain, actor=OPERATOR)
        await domains.verify(conn, acme.id, domain, actor=OPERATOR)
        await orgs.update(conn, acme.id, join_policy="offer", actor=OPERATOR)
    unverified = await person(client, services, app, f"new@{domain}", verified=False)
    offers = url(app, "/offers")
    assert (await client.get(offers, headers=unverified.auth)).json()["items"] == []
    problem(
        await client.post(url(app, f"/{acme.id}/join"), headers=unverified.auth),
        404,
        "org_not_found",
    )
    ada = await person(client, services, app, f"ada@{domain}")
    listed = await client.get(offers, headers=ada.auth)
    assert listed.status_code == 200, listed.text
    assert [(o["id"], o["slug"]) for o in listed.json()["items"]] == [(acme.id, "acme")]
    joined = await client.post(url(app, f"/{acme.id}/join"), headers=ada.auth)
    assert joined.status_code == 200, joined.text
    assert joined.json()["roles"] == ["member"]
    assert (await members_of(services, app, acme.id))[ada.id] == ["member"]
    # Joined: no offer any more, and joining again finds nothing to join.
    assert (await client.get(offers, headers=ada.auth)).json()["items"] == []
    problem(await client.post(url(app, f"/{acme.id}/join"), headers=ada.auth), 404, "org_not_found")
    # Another domain's user is offered nothing.
    bob = await person(client, services, app)
    assert (await client.get(offers, headers=bob.auth)).json()["items"] == []


async def test_expired_invitations_and_suspended_orgs(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    app = provision()
    ada = await person(client, services, app)
    acme = await org_of(services, app, "acme", admin=ada)
    accept = f"/apps/{app.app_id}/v1/invitations/accept"
    guest = unique_email("late")
    made = await client.post(
        url(app, f"/{acme.id}/invitations"), json={"email": guest}, headers=ada.auth
    )
    assert made.status_code == 201, made.text
    token = await invitation_token(services, mailbox, app, guest)
    invitee = await person(client, services, app, guest)
    async with services.router.enter(app) as conn:
        await conn.execute("UPDATE org_invitations SET expires_at = now() - interval '1 second'")
    problem(
        await client.post(accept, json={"token": token}, headers=invitee.auth),
        400,
        "invitation_invalid",
    )
    page = await client.get(f"/apps/{app.app_id}/invitations/accept", params={"token": token})
    assert page.status_code == 400
    assert "invitation_invalid" in page.text
    assert (await client.get(url(app, f"/{acme.id}/invitations"), headers=ada.auth)).json()[
        "items"
    ] == []

    # Suspended: still listed (with its status), but nothing is done in it.
    guest = unique_email("held")
    made = await client.post(
        url(app, f"/{acme.id}/invitations"), json={"email": guest}, headers=ada.auth
    )
    token = await invitation_token(services, mailbox, app, guest)
    async with services.router.enter(app) as conn:
        await orgs.suspend(conn, acme.id, actor=OPERATOR)
    listed = await client.get(url(app), headers=ada.auth)
    assert [(o["id"], o["status"]) for o in listed.json()["items"]] == [(acme.id, "suspended")]
    problem(await client.get(url(app, f"/{acme.id}"), headers=ada.auth), 403, "org_suspended")
    held = await person(client, services, app, guest)
    problem(
        await client.post(accept, json={"token": token}, headers=held.auth),
        400,
        "invitation_invalid",
    )
    async with services.router.enter(app) as conn:
        await orgs.resume(conn, acme.id, actor=OPERATOR)
    joined = await client.post(accept, json={"token": token}, headers=held.auth)
    assert joined.status_code == 200, joined.text
