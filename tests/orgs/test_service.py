"""Roles, organizations, members and org roles through the services, on a real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from oneauth import errors
from oneauth.apps.models import AppRecord
from oneauth.flows.mailing import Mailer
from oneauth.orgs import invitations, names, roles
from oneauth.orgs import service as orgs
from oneauth.services import Services

from ._support import OPERATOR, Actor, make_user


@pytest.mark.parametrize(
    ("fn", "value", "field"),
    [
        (names.role_name, "", "role"),
        (names.role_name, "ädmin", "role"),
        (names.role_name, "a" * 65, "role"),
        (names.role_name, "-lead", "role"),
        (names.role_name, 7, "role"),
        (names.permission_name, "invoice read", "permission"),
        (names.permission_name, "p" * 101, "permission"),
        (names.slug, "Acme", "slug"),
        (names.slug, "acme-", "slug"),
        (names.slug, "a" * 65, "slug"),
        (names.org_name, "  ", "name"),
        (names.org_name, "x" * 201, "name"),
        (names.org_name, "Acme\u200b Inc", "name"),
        (names.domain, "localhost", "domain"),
        (names.domain, "user@example.com", "domain"),
        (names.domain, "exa mple.com", "domain"),
    ],
)
def test_bad_names_are_a_validation_error_naming_the_field(
    fn: Callable[..., str], value: object, field: str
) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        fn(value)
    assert caught.value.status == 422
    assert caught.value.extra["field"] == field


def test_good_names_and_derived_slugs() -> None:
    assert names.role_name("billing.admin") == "billing.admin"
    assert names.permission_name("invoice:read") == "invoice:read"
    assert names.slug_from("Acme Inc.") == "acme-inc"
    assert names.slug_from("Ünïcödé GmbH") == "unicode-gmbh"
    assert names.slug_from("!!!") == "org"
    assert names.domain("Example.COM.") == "example.com"
    assert names.domain("Bücher.example") == names.domain("xn--bcher-kva.example")
    assert names.org_name(" Müller  GmbH ") == "Müller  GmbH"


async def test_app_roles_create_grant_revoke_delete(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    user = await make_user(services, app)
    async with services.router.enter(app) as conn:
        role = await roles.create_role(
            conn, "billing", permissions=["invoice:read", "invoice:write"], actor=OPERATOR
        )
        assert role.permissions == ["invoice:read", "invoice:write"]
        with pytest.raises(errors.RoleExists):
            await roles.create_role(conn, "billing", actor=OPERATOR)
    async with services.router.enter(app) as conn:
        assert await roles.grant(conn, user.id, "billing", actor=OPERATOR) is True
        assert await roles.grant(conn, user.email, "billing", actor=OPERATOR) is False
        assert await roles.roles_of(conn, user.id) == ["billing"]
        assert await roles.permissions_of(conn, user.id) == ["invoice:read", "invoice:write"]
        with pytest.raises(errors.RoleNotFound):
            await roles.grant(conn, user.id, "nope", actor=OPERATOR)
        with pytest.raises(errors.UserNotFound):
            await roles.grant(conn, uuid.uuid4(), "billing", actor=OPERATOR)
        assert [r.name for r in await roles.list_roles(conn)] == ["billing"]
        assert await roles.revoke(conn, user.id, "billing", actor=OPERATOR) is True
        assert await roles.revoke(conn, user.id, "billing", actor=OPERATOR) is False
        await roles.grant(conn, user.id, "billing", actor=OPERATOR)
        await roles.delete_role(conn, "billing", actor=OPERATOR)
        assert await roles.roles_of(conn, user.id) == []
        events = [
            r["event"]
            for r in await conn.fetch(
                "SELECT event FROM audit_log WHERE event LIKE 'role.%' ORDER BY id"
            )
        ]
    assert events == [
        "role.create",
        "role.grant",
        "role.revoke",
        "role.grant",
        "role.delete",
    ]


async def test_org_lifecycle_slugs_and_settings(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    creator = await make_user(services, app)
    async with services.router.enter(app) as conn:
        acme = await orgs.create(
            conn, name="Acme", creator=creator.id, actor=Actor.user(creator.id)
        )
        assert acme.id.startswith("org_")
        assert acme.slug == "acme"
        assert acme.status == "active"
        second = await orgs.create(conn, name="ACME", actor=OPERATOR)
        assert second.slug == "acme-2"
        with pytest.raises(errors.OrgSlugTaken):
            await orgs.create(conn, name="Other", slug="acme", actor=OPERATOR)
        assert (await orgs.get(conn, "acme")) == acme
        assert (await orgs.get(conn, acme.id)) == acme
        assert await orgs.get(conn, "org_" + "x" * 22) is None
        created = await orgs.membership(conn, acme.id, creator.id)
        assert created is not None
        assert created.roles == ["admin"]
        assert created.joined_via == "created"
        assert "org:members:write" in created.permissions
        assert [(o.id, r) for o, r in await orgs.of_user(conn, creator.id)] == [
            (acme.id, ["admin"])
        ]
        changed = await orgs.update(
            conn,
            acme.id,
            actor=OPERATOR,
            mfa_required=True,
            join_policy="offer",
            default_role="admin",
            branding={"display_name": "Acme Corp", "primary_color": "#AA0000"},
        )
        assert changed.mfa_required
        assert changed.join_policy == "offer"
        assert changed.default_role == "admin"
        assert changed.branding == {"display_name": "Acme Corp", "primary_color": "#aa0000"}
        cleared = await orgs.update(
            conn, acme.id, actor=OPERATOR, default_role=None, branding={"primary_color": None}
        )
        assert cleared.default_role is None
        assert cleared.branding == {"display_name": "Acme Corp"}
        for bad in (
            {"join_policy": "sometimes"},
            {"branding": {"logo_url": "javascript:alert(1)"}},
            {"branding": {"logo_url": "http://x.example/logo.png"}},
            {"branding": {"font": "Comic Sans"}},
            {"default_role": "ghost"},
        ):
            with pytest.raises((errors.ValidationFailed, errors.RoleNotFound)):
                await orgs.update(conn, acme.id, actor=OPERATOR, **bad)
        assert (await orgs.suspend(conn, acme.id, actor=OPERATOR)).status == "suspended"
        assert (await orgs.resume(conn, acme.id, actor=OPERATOR)).status == "active"
        page, cursor = await orgs.list_all(conn, limit=1)
        assert [o.slug for o in page] == ["acme"]
        assert cursor == "acme"
        page, cursor = await orgs.list_all(conn, cursor=cursor, limit=1)
        assert [o.slug for o in page] == ["acme-2"]
        assert cursor is None
        events = [
            r["event"]
            for r in await conn.fetch(
                "SELECT event FROM audit_log WHERE target_id = $1 ORDER BY id", acme.id
            )
        ]
        actors = {
            r["actor_type"]
            for r in await conn.fetch(
                "SELECT actor_type FROM audit_log WHERE target_id = $1", acme.id
            )
        }
    assert events == [
        "org.create",
        "org.member.add",
        "org.update",
        "org.update",
        "org.suspend",
        "org.resume",
    ]
    assert actors == {"user", "operator"}


async def test_members_roles_and_permission_checks(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    admin, alice, outsider = [await make_user(services, app) for _ in range(3)]
    async with services.router.enter(app) as conn:
        acme = await orgs.create(conn, name="Acme", creator=admin.id, actor=OPERATOR)
        other = await orgs.create(conn, name="Other", actor=OPERATOR)
        m = await orgs.add_member(conn, acme.id, alice.email, actor=Actor.user(admin.id))
        assert m.roles == ["member"]
        assert m.permissions == frozenset({"org:read"})
        with pytest.raises(errors.AlreadyMember):
            await orgs.add_member(conn, acme.id, alice.id, actor=OPERATOR)
        # Permissions, never role names, decide.
        await orgs.require(conn, acme.id, admin.id, "org:members:write")
        with pytest.raises(errors.OrgPermissionRequired) as refused:
            await orgs.require(conn, acme.id, alice.id, "org:members:write")
        assert refused.value.code == "org_permission_required"
        with pytest.raises(errors.OrgNotFound):
            await orgs.require(conn, acme.id, outsider.id, "org:read")
        with pytest.raises(errors.OrgNotFound):
            await orgs.require(conn, "org_" + "n" * 22, admin.id, "org:read")
        # A custom role: usable in its own org only, never named like a template role.
        billing = await orgs.create_custom_role(
            conn, acme.id, "billing", ["org:read", "org:invitations:write"], actor=OPERATOR
        )
        assert billing.custom
        with pytest.raises(errors.RoleExists):
            await orgs.create_custom_role(conn, acme.id, "admin", ["org:read"], actor=OPERATOR)
        with pytest.raises(errors.RoleExists):
            await orgs.create_org_role(conn, None, "billing", ["org:read"], actor=OPERATOR)
        with pytest.raises(errors.ValidationFailed):
            await orgs.create_custom_role(conn, acme.id, "x", ["invented:perm"], actor=OPERATOR)
        with pytest.raises(errors.RoleNotFound):
            await orgs.add_member(conn, other.id, alice.id, roles=["billing"], actor=OPERATOR)
        with pytest.raises(errors.RoleNotFound):
            await orgs.update(conn, other.id, actor=OPERATOR, default_role="billing")
        assert [r.name for r in await orgs.org_roles(conn, other.id)] == ["admin", "member"]
        assert [r.name for r in await orgs.org_roles(conn, acme.id)] == [
            "admin",
            "member",
            "billing",
        ]
        m = await orgs.set_member_roles(conn, acme.id, alice.id, ["billing"], actor=OPERATOR)
        assert m.roles == ["billing"]
        await orgs.require(conn, acme.id, alice.id, "org:invitations:write")
        listed, cursor = await orgs.members(conn, acme.id)
        assert cursor is None
        assert {(x.user_id, tuple(x.roles)) for x in listed} == {
            (admin.id, ("admin",)),
            (alice.id, ("billing",)),
        }
        await orgs.delete_custom_role(conn, acme.id, "billing", actor=OPERATOR)
        m2 = await orgs.membership(conn, acme.id, alice.id)
        assert m2 is not None
        assert m2.roles == []
        with pytest.raises(errors.MemberNotFound):
            await orgs.remove_member(conn, other.id, alice.id, actor=OPERATOR)
        assert await orgs.remove_member(conn, acme.id, alice.id, actor=OPERATOR) == 0
        assert await orgs.membership(conn, acme.id, alice.id) is None
        await orgs.suspend(conn, acme.id, actor=OPERATOR)
        with pytest.raises(errors.OrgSuspended):
            await orgs.require(conn, acme.id, admin.id, "org:read")


async def test_members_cannot_give_more_than_they_hold_nor_drop_the_last_manager(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    admin, inviter, bob = [await make_user(services, app) for _ in range(3)]
    async with services.router.enter(app) as conn:
        acme = await orgs.create(conn, name="Acme", creator=admin.id, actor=OPERATOR)
        await orgs.create_custom_role(
            conn, acme.id, "recruiter", ["org:read", "org:invitations:write"], actor=OPERATOR
        )
        await orgs.add_member(conn, acme.id, inviter.id, roles=["recruiter"], actor=OPERATOR)
        as_inviter = Actor.user(inviter.id)
        # The recruiter may add a plain member, never an admin (escalation).
        await orgs.add_member(conn, acme.id, bob.id, roles=["member"], actor=as_inviter)
        with pytest.raises(errors.OrgPermissionRequired) as caught:
            await orgs.set_member_roles(conn, acme.id, bob.id, ["admin"], actor=as_inviter)
        assert caught.value.extra["field"] == "roles"
        mailer = Mailer(services, app)
        with pytest.raises(errors.OrgPermissionRequired):
            await invitations.invite(
                mailer, conn, acme.id, "x@example.com", roles=["admin"], invited_by=as_inviter
            )
        await invitations.invite(
            mailer, conn, acme.id, "y@example.com", roles=["recruiter"], invited_by=as_inviter
        )
        # The last member manager cannot demote or remove themselves ...
        as_admin = Actor.user(admin.id)
        with pytest.raises(errors.LastOrgManager):
            await orgs.set_member_roles(conn, acme.id, admin.id, ["member"], actor=as_admin)
        with pytest.raises(errors.LastOrgManager):
            await orgs.remove_member(conn, acme.id, admin.id, actor=as_admin)
        # ... once another holds the permission, they can.
        await orgs.set_member_roles(conn, acme.id, bob.id, ["admin"], actor=as_admin)
        await orgs.remove_member(conn, acme.id, admin.id, actor=as_admin)
        # The operator is never limited; members of an org without managers may leave.
        await orgs.remove_member(conn, acme.id, bob.id, actor=OPERATOR)
        assert await orgs.managers(conn, acme.id) == 0
        await orgs.remove_member(conn, acme.id, inviter.id, actor=as_inviter)
