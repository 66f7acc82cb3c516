"""The reserved control-plane app ``platform`` (issue 15): init, reserved ids, /platform mount."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from urllib.parse import urlsplit

import httpx
import pytest

import platformkit
from conftest import new_app_id
from oidc._support import PASSWORD, challenge_of, form, jwt_claims, query
from oneauth.apps import lifecycle
from oneauth.db import ops
from oneauth.db.naming import InvalidAppId
from oneauth.oauth import clients
from oneauth.platform import CONSOLE_CLIENT_ID, bootstrap, operators
from oneauth.platform.bootstrap import InitResult
from oneauth.settings import Settings
from platformkit import platform_client, platform_token

CALLBACK = "http://testserver/console/callback"
platform_init = platformkit.platform_init  # the fixture


def _audit_count(conn: lifecycle.Conn, event: str) -> int:
    app = lifecycle.get(conn, "platform")
    assert app is not None
    with conn.transaction(), ops.app_context(conn, app.names):
        row = conn.execute("SELECT count(*) FROM audit_log WHERE event = %s", (event,)).fetchone()
    assert row is not None
    return int(row[0])


def test_init_is_idempotent(platform_init: InitResult, settings: Settings) -> None:
    assert platform_init.app.app_id == "platform"
    assert platform_init.console_client_id == CONSOLE_CLIENT_ID
    assert platform_init.console_redirect_uri == CALLBACK
    with ops.connect(settings.operator_url) as conn:
        inits = _audit_count(conn, "platform.init")
        again = bootstrap.init(conn, settings)
        assert again.created is False
        assert again.changed == []
        assert _audit_count(conn, "platform.init") == inits  # nothing changed, nothing audited
        app = lifecycle.get(conn, "platform")
        assert app is not None
        assert app.status == "active"
        assert app.schema_version == lifecycle.latest_app_version()
        with conn.transaction(), ops.app_context(conn, app.names):
            console = clients.get(conn, CONSOLE_CLIENT_ID)
            keys = conn.execute("SELECT count(*) FROM signing_keys").fetchone()
        assert keys is not None
        assert keys[0] >= 1
    assert console is not None
    assert console.kind == "public"
    assert console.first_party
    assert console.redirect_uris == (CALLBACK,)
    assert console.grant_types == frozenset({"authorization_code", "refresh_token"})


def test_init_follows_a_new_public_url(platform_init: InitResult, settings: Settings) -> None:
    """The console's redirect follows ONEAUTH_PUBLIC_URL; the second run is a no-op again."""
    from dataclasses import replace

    moved = replace(settings, public_url="https://auth.example.org")
    with ops.connect(settings.operator_url) as conn:
        try:
            first = bootstrap.init(conn, moved)
            assert first.changed == ["console_client"]
            assert first.console_redirect_uri == "https://auth.example.org/console/callback"
            assert bootstrap.init(conn, moved).changed == []
        finally:
            assert bootstrap.init(conn, settings).changed == ["console_client"]


@pytest.mark.parametrize("app_id", ["platform", "console", "admin"])
def test_reserved_ids_are_refused(
    platform_init: InitResult, sync_conn: lifecycle.Conn, settings: Settings, app_id: str
) -> None:
    with pytest.raises(InvalidAppId, match="reserved"):
        lifecycle.provision(sync_conn, settings, app_id, "Mine")


def test_cli_refuses_reserved_ids_and_runs_init(
    platform_init: InitResult, settings: Settings
) -> None:
    env = {
        **os.environ,
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_PUBLIC_URL": settings.public_url,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "oneauth.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )

    refused = run("apps", "provision", "console", "--name", "Console")
    assert refused.returncode == 1
    assert "reserved" in refused.stderr
    assert "Traceback" not in refused.stderr
    init = run("platform", "init", "--json")
    assert init.returncode == 0, init.stderr
    body = json.loads(init.stdout)
    assert body["issuer"] == "http://testserver/platform"
    assert body["created"] is False
    assert body["changed"] == []
    assert body["console_client_id"] == CONSOLE_CLIENT_ID
    # A platform client from the CLI: the secret is printed once, as JSON.
    made = run(
        "platform", "clients", "create", "--name", "cli", "--scopes", "platform:apps:read", "--json"
    )
    assert made.returncode == 0, made.stderr
    client = json.loads(made.stdout)
    assert len(client["client_secret"]) >= 40
    assert client["scopes"] == ["platform:apps:read"]
    listed = run("platform", "clients", "list", "--json")
    assert client["client_id"] in {c["client_id"] for c in json.loads(listed.stdout)}
    assert client["client_secret"] not in listed.stdout
    bad = run("platform", "clients", "create", "--name", "x", "--scopes", "admin:users:read")
    assert bad.returncode == 1
    assert "platform scopes only" in bad.stderr
    # Operators and grants, with the password on standard input.
    email = f"op-{secrets.token_hex(3)}@example.com"
    created = subprocess.run(
        [
            *(sys.executable, "-m", "oneauth.cli.main", "platform", "operators", "create"),
            *("--email", email, "--password-file", "-", "--json"),
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["created"] is True
    app_id = new_app_id("grant")
    assert run("apps", "provision", app_id, "--name", "Granted").returncode == 0
    granted = run("platform", "operators", "grant", "--email", email, "--app", app_id)
    assert granted.returncode == 2  # --role is required
    granted = run(
        "platform", "operators", "grant", "--email", email, "--app", app_id, "--role", "viewer"
    )
    assert granted.returncode == 0, granted.stderr
    assert (
        run(
            "platform", "operators", "grant", "--email", email, "--all", "--role", "admin"
        ).returncode
        == 0
    )
    nope = run(
        "platform", "operators", "grant", "--email", email, "--app", "platform", "--role", "admin"
    )
    assert nope.returncode == 1
    assert "no app" in nope.stderr
    listed_ops = json.loads(run("platform", "operators", "list", "--json").stdout)
    mine = next(o for o in listed_ops if o["email"] == email)
    assert mine["grants"] == [
        {"app_id": None, "role": "admin"},
        {"app_id": app_id, "role": "viewer"},
    ]
    revoked = run("platform", "operators", "revoke", "--email", email, "--app", app_id)
    assert revoked.returncode == 0
    assert "revoked" in revoked.stdout
    listed_ops = json.loads(run("platform", "operators", "list", "--json").stdout)
    assert next(o for o in listed_ops if o["email"] == email)["grants"] == [
        {"app_id": None, "role": "admin"}
    ]
    with ops.connect(settings.operator_url) as conn:
        for event in (
            "platform.operator.create",
            "platform.operator.grant",
            "platform.operator.revoke",
            "platform.client.create",
        ):
            assert _audit_count(conn, event) >= 1, event


async def test_apps_platform_is_404_and_platform_serves_discovery(
    platform_init: InitResult, client: httpx.AsyncClient
) -> None:
    for path in (
        "/apps/platform/.well-known/openid-configuration",
        "/apps/platform/oauth/token",
        "/apps/console/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/apps/platform",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
    doc = (await client.get("/platform/.well-known/openid-configuration")).json()
    assert doc["issuer"] == "http://testserver/platform"
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        assert doc[key].startswith("http://testserver/platform/"), key
    rfc8414 = await client.get("/.well-known/oauth-authorization-server/platform")
    assert rfc8414.status_code == 200
    assert rfc8414.json()["issuer"] == doc["issuer"]
    # The federation callback an upstream would be registered with is under /platform
    # and reaches the federation handler (its own answer for an unknown provider,
    # not the gate's 404 for an unknown app).
    from oneauth.federation.providers import callback_url
    from oneauth.settings import issuer_url

    callback = callback_url(issuer_url("http://testserver", "platform"), "idp_nope")
    assert callback == "http://testserver/platform/federation/idp_nope/callback"
    answer = await client.get(urlsplit(callback).path, params={"state": "x", "code": "y"})
    assert answer.headers["content-type"].startswith("text/html")  # the page, not the gate
    gate = await client.get("/apps/platform/federation/idp_nope/callback")
    assert gate.json()["code"] == "app_not_found"
    jwks = await client.get(urlsplit(doc["jwks_uri"]).path)
    assert jwks.status_code == 200
    assert jwks.json()["keys"]


async def test_platform_client_credentials_token_and_oauth_errors(
    platform_init: InitResult, settings: Settings, client: httpx.AsyncClient
) -> None:
    client_id, secret = platform_client(settings, ["platform:apps:read"])
    token = await platform_token(client, client_id, secret)
    _, claims = jwt_claims(token)
    assert claims["iss"] == "http://testserver/platform"
    assert claims["sub"] == client_id
    assert "platform:apps:read" in claims["scope"].split()
    # Errors at /platform/oauth/ are in the OAuth format, not problem details.
    wrong = await client.post(
        "/platform/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "x")
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    # A disabled client gets no token once the change notice has dropped it from
    # the process's client cache (README: "as soon as the change commits", under 2 s).
    with ops.connect(settings.operator_url) as conn:
        operators.disable_client(conn, client_id)
    deadline = asyncio.get_running_loop().time() + 2.0
    while True:
        refused = await client.post(
            "/platform/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        if refused.status_code != 200 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert refused.status_code == 401


async def test_console_signs_an_operator_in_at_platform_hosted_pages(
    platform_init: InitResult, settings: Settings, service: object
) -> None:
    """The full code + PKCE flow of the console's client, at the /platform issuer: the
    hosted pages, their CSRF, the cookie's path and the redirect all live under /platform."""
    from oneauth.identity.passwords import PasswordHasher

    email = f"op-{secrets.token_hex(3)}@example.com"
    hasher = PasswordHasher(max_workers=1)
    try:
        with ops.connect(settings.operator_url) as conn:
            operators.create_operator(conn, email, hasher.hash_sync(PASSWORD))
    finally:
        hasher.close()
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": CONSOLE_CLIENT_ID,
        "redirect_uri": CALLBACK,
        "scope": "openid email",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
    }
    transport = httpx.ASGITransport(app=service)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/platform/oauth/authorize", params=params)
        for _ in range(4):
            if response.status_code in (302, 303):
                location = response.headers["location"]
                if location.startswith(CALLBACK):
                    break
                assert urlsplit(location).path.startswith("/platform/"), location
                response = await http.get(location)
                continue
            assert response.status_code == 200, response.text
            page = form(response.text)
            assert urlsplit(page.action).path.startswith("/platform/"), page.action
            data = dict(page.fields)
            data.update(email=email, password=PASSWORD)
            response = await http.post(page.action, data=data)
            for cookie in response.headers.get_list("set-cookie"):
                assert "Path=/platform" in cookie, cookie
        else:
            raise AssertionError("the flow did not reach the console's callback")
        result = query(response.headers["location"])
        assert result["state"] == "st-1"
        assert result["iss"] == "http://testserver/platform"
        tokens = await http.post(
            "/platform/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": result["code"],
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
                "client_id": CONSOLE_CLIENT_ID,
            },
        )
        assert tokens.status_code == 200, tokens.text
        _, id_claims = jwt_claims(tokens.json()["id_token"])
        assert id_claims["iss"] == "http://testserver/platform"
        assert id_claims["aud"] == CONSOLE_CLIENT_ID
        assert id_claims["email"] == email
        # The same flow at /apps/platform does not exist.
        assert (await http.get("/apps/platform/oauth/authorize", params=params)).status_code == 404


def test_the_service_role_may_queue_jobs_and_nothing_more(
    platform_init: InitResult, settings: Settings
) -> None:
    """D1: the serving role reads grants and inserts/reads jobs; it cannot run, change
    or delete a job, write grants, or create what a job creates."""
    import psycopg

    from oneauth.db import roles

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        roles.check_service_role(conn)  # the startup audit still passes
        conn.execute("SELECT count(*) FROM oneauth.console_grants").fetchone()
        job = conn.execute(
            "INSERT INTO oneauth.platform_jobs (kind, app_id, actor_client_id)"
            " VALUES ('suspend', 'nope-nope', 'cl_test') RETURNING id"
        ).fetchone()
        assert job is not None
        for statement in (
            f"UPDATE oneauth.platform_jobs SET status = 'succeeded' WHERE id = '{job[0]}'",
            f"DELETE FROM oneauth.platform_jobs WHERE id = '{job[0]}'",
            "INSERT INTO oneauth.console_grants (operator_sub, role)"
            " VALUES (gen_random_uuid(), 'admin')",
            "DELETE FROM oneauth.console_grants",
            "UPDATE oneauth.apps SET status = 'suspended'",
            "CREATE SCHEMA app_by_the_service",
            "CREATE ROLE oneauth_by_the_service",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with ops.connect(settings.operator_url) as conn:  # not left for a runner to try
        conn.execute("DELETE FROM oneauth.platform_jobs WHERE id = %s", (job[0],))


def test_the_control_plane_cannot_be_suspended_or_deleted(
    platform_init: InitResult, sync_conn: lifecycle.Conn
) -> None:
    with pytest.raises(lifecycle.AppConflict, match="control plane"):
        lifecycle.set_status(sync_conn, "platform", "suspended")
    with pytest.raises(lifecycle.AppConflict, match="control plane"):
        lifecycle.delete(sync_conn, "platform")
    app = lifecycle.get(sync_conn, "platform")
    assert app is not None
    assert app.status == "active"
