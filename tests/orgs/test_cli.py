"""The operator CLI for roles and organizations with --json; it runs the same services
as the API, under the operator role. ``run`` starts it as a user does (a subprocess);
``cli`` runs the same ``main()`` in this process (a thread with its own event loop),
which keeps the many calls of these tests fast on a loaded machine."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest

from oneauth.apps.models import AppRecord
from oneauth.cli.main import main
from oneauth.flows.mailing import Mailer
from oneauth.orgs import invitations
from oneauth.orgs import service as orgs
from oneauth.services import Services
from oneauth.settings import Settings

from ._support import OPERATOR, make_user, unique_email


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_env(settings)}
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def _env(settings: Settings) -> dict[str, str]:
    return {
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_PUBLIC_URL": "https://auth.example.com",
    }


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``oneauth ARGS`` in this process; an exception other than its exit propagates."""

    def call() -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

    # The CLI configures logging for its process; not for the test process.
    with (
        mock.patch.dict(os.environ, _env(settings)),
        mock.patch("oneauth.logs.configure"),
        ThreadPoolExecutor(1) as pool,
    ):
        return pool.submit(call).result(timeout=120)


def ok(settings: Settings, *args: str) -> Any:
    """Run with --json; the parsed output."""
    result = cli(settings, *args, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def refused(settings: Settings, code: str, *args: str) -> str:
    result = cli(settings, *args)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert f"({code}" in result.stderr, result.stderr
    return result.stderr


async def test_roles_and_user_roles(
    settings: Settings, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    a = app.app_id
    user = await make_user(services, app)
    role = ok(
        settings,
        "roles",
        "create",
        "--app",
        a,
        "billing",
        "--permission",
        "invoice:read",
        "--permission",
        "invoice:write",
    )
    assert role["name"] == "billing"
    assert role["permissions"] == ["invoice:read", "invoice:write"]
    refused(settings, "role_exists", "roles", "create", "--app", a, "billing")
    refused(settings, "validation_failed", "roles", "create", "--app", a, "bad name")
    assert [r["name"] for r in ok(settings, "roles", "list", "--app", a)] == ["billing"]
    added = ok(settings, "users", "roles", "add", "--app", a, user.email, "billing")
    assert added == {"user_id": user.sub, "role": "billing", "changed": True, "roles": ["billing"]}
    listed = ok(settings, "users", "roles", "list", "--app", a, user.sub)
    assert listed["roles"] == ["billing"]
    assert listed["permissions"] == ["invoice:read", "invoice:write"]
    refused(
        settings,
        "user_not_found",
        "users",
        "roles",
        "add",
        "--app",
        a,
        "nobody@x.example",
        "billing",
    )
    removed = ok(settings, "users", "roles", "remove", "--app", a, user.sub, "billing")
    assert removed["changed"] is True
    assert removed["roles"] == []
    assert ok(settings, "roles", "delete", "--app", a, "billing")["deleted"] is True
    assert ok(settings, "roles", "list", "--app", a) == []
    text = run(settings, "users", "roles", "list", "--app", a, user.sub)
    assert f"user:        {user.sub}" in text.stdout


async def test_orgs_members_roles_invitations_domains(
    settings: Settings, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    a = app.app_id
    admin, alice = await make_user(services, app), await make_user(services, app)
    org = ok(settings, "orgs", "create", "--app", a, "--name", "Acme Inc.", "--admin", admin.email)
    assert org["slug"] == "acme-inc"
    assert org["id"].startswith("org_")
    oid = org["id"]
    refused(
        settings,
        "org_slug_taken",
        "orgs",
        "create",
        "--app",
        a,
        "--name",
        "X",
        "--slug",
        "acme-inc",
    )
    assert ok(settings, "orgs", "create", "--app", a, "--name", "Beta", "--slug", "beta")[
        "slug"
    ] == ("beta")
    listed = ok(settings, "orgs", "list", "--app", a, "--limit", "1")
    assert [o["slug"] for o in listed["organizations"]] == ["acme-inc"]
    assert listed["next_cursor"] == "acme-inc"
    assert ok(settings, "orgs", "show", "--app", a, "acme-inc")["id"] == oid
    refused(settings, "org_not_found", "orgs", "show", "--app", a, "org_" + "z" * 22)

    updated = ok(
        settings,
        "orgs",
        "update",
        "--app",
        a,
        oid,
        "--mfa-required",
        "--join-policy",
        "automatic",
        "--display-name",
        "ACME",
        "--primary-color",
        "#112233",
        "--default-role",
        "member",
    )
    assert updated["mfa_required"] is True
    assert updated["join_policy"] == "automatic"
    assert updated["branding"] == {"display_name": "ACME", "primary_color": "#112233"}
    cleared = ok(
        settings,
        "orgs",
        "update",
        "--app",
        a,
        oid,
        "--no-mfa-required",
        "--clear-branding",
        "primary_color",
        "--clear-default-role",
    )
    assert cleared["mfa_required"] is False
    assert cleared["default_role"] is None
    assert cleared["branding"] == {"display_name": "ACME"}
    refused(
        settings,
        "validation_failed",
        "orgs",
        "update",
        "--app",
        a,
        oid,
        "--logo-url",
        "http://insecure.example/logo.png",
    )

    # Members: by email or id, roles, custom roles.
    role = ok(
        settings,
        "orgs",
        "roles",
        "create",
        "--app",
        a,
        oid,
        "billing",
        "--permission",
        "org:read",
        "--permission",
        "org:invitations:write",
    )
    assert role["custom"] is True
    refused(settings, "role_exists", "orgs", "roles", "create", "--app", a, oid, "admin")
    assert [r["name"] for r in ok(settings, "orgs", "roles", "list", "--app", a, oid)] == [
        "admin",
        "member",
        "billing",
    ]
    member = ok(settings, "orgs", "members", "add", "--app", a, oid, alice.email)
    assert member["roles"] == ["member"]
    assert member["joined_via"] == "operator"
    refused(settings, "already_member", "orgs", "members", "add", "--app", a, oid, alice.sub)
    refused(
        settings,
        "role_not_found",
        "orgs",
        "members",
        "add",
        "--app",
        a,
        "beta",
        alice.sub,
        "--role",
        "billing",
    )
    member = ok(
        settings, "orgs", "members", "set-roles", "--app", a, oid, alice.sub, "--role", "billing"
    )
    assert member["permissions"] == ["org:invitations:write", "org:read"]
    members = ok(settings, "orgs", "members", "--app", a, oid)
    assert {(m["email"], tuple(m["roles"])) for m in members} == {
        (admin.email, ("admin",)),
        (alice.email, ("billing",)),
    }
    gone = ok(settings, "orgs", "members", "remove", "--app", a, oid, alice.email)
    assert gone["removed"] is True
    assert gone["sessions_ended"] == 0
    assert ok(settings, "orgs", "roles", "delete", "--app", a, oid, "billing")["deleted"]

    # Invitations: mailed through the outbox, the link shown once.
    email = unique_email()
    invited = ok(settings, "orgs", "invite", "--app", a, oid, "--email", email, "--role", "admin")
    assert invited["state"] == "open"
    assert invited["roles"] == ["admin"]
    assert invited["invited_by"] == "operator"
    link = urlsplit(invited["link"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == (
        f"https://auth.example.com/apps/{a}/invitations/accept"
    )
    token = parse_qs(link.query)["token"][0]
    async with services.router.enter(app) as conn:
        queued = await conn.fetchrow(
            "SELECT kind, recipient, secrets_sealed IS NOT NULL AS sealed FROM outbox"
            " WHERE recipient = $1",
            email,
        )
        assert dict(queued) == {"kind": "org_invitation", "recipient": email, "sealed": True}
    [open_one] = ok(settings, "orgs", "invitations", "list", "--app", a, oid)
    assert open_one["id"] == invited["id"]
    again = ok(settings, "orgs", "invite", "--app", a, oid, "--email", email)
    assert [i["id"] for i in ok(settings, "orgs", "invitations", "list", "--app", a, oid)] == [
        again["id"]
    ]
    revoked = ok(settings, "orgs", "invitations", "revoke", "--app", a, oid, again["id"])
    assert revoked["state"] == "revoked"
    states = {
        i["id"]: i["state"]
        for i in ok(settings, "orgs", "invitations", "list", "--app", a, oid, "--all")
    }
    assert states == {invited["id"]: "revoked", again["id"]: "revoked"}
    refused(
        settings,
        "invitation_not_found",
        "orgs",
        "invitations",
        "revoke",
        "--app",
        a,
        oid,
        again["id"],
    )
    invitee = await make_user(services, app, email)
    async with services.router.enter(app) as conn:
        with pytest.raises(Exception, match="invitation"):
            await invitations.accept(conn, Mailer(services, app).macs, token, invitee)
    third = ok(settings, "orgs", "invite", "--app", a, oid, "--email", email, "--ttl-days", "1")
    token = parse_qs(urlsplit(third["link"]).query)["token"][0]
    async with services.router.enter(app) as conn:
        joined = await invitations.accept(conn, Mailer(services, app).macs, token, invitee)
    assert joined.roles == ["member"]

    # Domains.
    added = ok(settings, "orgs", "domains", "add", "--app", a, oid, "Acme.Example")
    assert added == {**added, "domain": "acme.example", "verified": False}
    assert ok(settings, "orgs", "domains", "verify", "--app", a, oid, "acme.example")["verified"]
    ok(settings, "orgs", "domains", "add", "--app", a, "beta", "acme.example")
    refused(
        settings, "domain_taken", "orgs", "domains", "verify", "--app", a, "beta", "acme.example"
    )
    assert [d["domain"] for d in ok(settings, "orgs", "domains", "list", "--app", a, oid)] == [
        "acme.example"
    ]
    assert ok(settings, "orgs", "domains", "remove", "--app", a, oid, "acme.example")["removed"]
    refused(settings, "validation_failed", "orgs", "domains", "add", "--app", a, oid, "nodot")

    # Suspend, resume, delete.
    assert ok(settings, "orgs", "suspend", "--app", a, oid)["status"] == "suspended"
    assert ok(settings, "orgs", "resume", "--app", a, oid)["status"] == "active"
    assert "--yes" in cli(settings, "orgs", "delete", "--app", a, oid).stderr
    deleted = ok(settings, "orgs", "delete", "--app", a, oid, "--yes")
    assert deleted == {"id": oid, "slug": "acme-inc", "deleted": True, "sessions_ended": 0}
    async with services.router.enter(app) as conn:
        assert await orgs.get(conn, oid) is None
        actors = {
            r["actor_type"]
            for r in await conn.fetch("SELECT actor_type FROM audit_log WHERE event LIKE 'org.%'")
        }
    assert "operator" in actors


def test_help_texts_and_unknown_app(settings: Settings) -> None:
    for args in (
        ("roles", "--help"),
        ("users", "roles", "add", "--help"),
        ("orgs", "--help"),
        ("orgs", "members", "--help"),
        ("orgs", "invite", "--help"),
        ("orgs", "domains", "verify", "--help"),
    ):
        shown = cli(settings, *args)
        assert shown.returncode == 0, shown.stderr
        assert "usage:" in shown.stdout
    assert "invitations/accept?token=" in cli(settings, "orgs", "invite", "--help").stdout
    assert "usage: oneauth orgs" in run(settings, "orgs", "--help").stdout  # a real process
    missing = run(settings, "orgs", "list", "--app", "no-such-app-here")
    assert missing.returncode == 1
    assert "no app" in missing.stderr
    bad = cli(settings, "orgs", "members", "add", "--app", "no-such-app-here", "org_x")
    assert bad.returncode == 1
    assert "usage:" in bad.stderr


async def test_an_org_id_of_app_a_is_unknown_to_the_cli_at_app_b(
    settings: Settings, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app_a, app_b = provision(), provision()
    async with services.router.enter(app_a) as conn:
        acme = await orgs.create(conn, name="Acme", slug="acme", actor=OPERATOR)
    refused(settings, "org_not_found", "orgs", "show", "--app", app_b.app_id, acme.id)
    refused(
        settings,
        "org_not_found",
        "orgs",
        "invite",
        "--app",
        app_b.app_id,
        acme.id,
        "--email",
        unique_email(),
    )
    assert ok(settings, "orgs", "list", "--app", app_b.app_id)["organizations"] == []


async def test_template_org_roles_are_every_orgs_and_only_this_apps(
    settings: Settings, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app, other = provision(), provision()
    a = app.app_id
    org = ok(settings, "orgs", "create", "--app", a, "--name", "Acme")["id"]
    ok(settings, "orgs", "roles", "create", "--app", a, org, "billing", "--permission", "org:read")
    made = ok(
        settings,
        "orgs",
        "template-roles",
        "create",
        "--app",
        a,
        "viewer",
        "--permission",
        "org:read",
    )
    assert (made["name"], made["custom"], made["permissions"]) == ("viewer", False, ["org:read"])
    # One name space with every org's custom roles, and the permissions must exist.
    refused(settings, "role_exists", "orgs", "template-roles", "create", "--app", a, "billing")
    refused(
        settings,
        "validation_failed",
        "orgs",
        "template-roles",
        "create",
        "--app",
        a,
        "auditor",
        "--permission",
        "no:such",
    )
    names = [r["name"] for r in ok(settings, "orgs", "template-roles", "list", "--app", a)]
    assert names == ["admin", "member", "viewer"]
    later = ok(settings, "orgs", "create", "--app", a, "--name", "Later")["id"]
    in_later = [r["name"] for r in ok(settings, "orgs", "roles", "list", "--app", a, later)]
    assert in_later == ["admin", "member", "viewer"]  # every org has it, new ones too
    at_b = [
        r["name"] for r in ok(settings, "orgs", "template-roles", "list", "--app", other.app_id)
    ]
    assert at_b == ["admin", "member"]
