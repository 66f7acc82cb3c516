"""``oneauth providers``, run as an operator runs it (a subprocess): the secret comes
from a file or stdin, is sealed at rest and never printed or logged; the exact
callback URL is printed; every change is audited; one app's provider is nobody
else's (issue 14, A2, B4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from oneauth.apps.dek import KeyRing
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.federation import providers
from oneauth.settings import Settings

PUBLIC = "https://auth.example.com"
SECRET = "s3cr3t-Upstream-Client-Secret-0123456789"


def run(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_PUBLIC_URL": PUBLIC,
        "ONEAUTH_MASTER_KEY": settings.master_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", "providers", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        check=False,
        timeout=60,
    )


def audit_rows(settings: Settings, app: AppRecord) -> list[tuple[str, str, str]]:
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        rows = conn.execute(
            "SELECT event, target_id, details::text FROM audit_log"
            " WHERE event LIKE 'federation.provider%' ORDER BY id"
        ).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def sealed_of(settings: Settings, app: AppRecord, provider_id: str) -> str:
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        row = conn.execute(
            "SELECT client_secret_sealed FROM identity_providers WHERE id = %s", (provider_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_create_from_a_file_prints_id_and_callback_never_the_secret(
    settings: Settings, provision: Callable[..., AppRecord], tmp_path: Path
) -> None:
    app = provision(name="CLI Fed")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    created = run(
        settings,
        "create",
        "--app",
        app.app_id,
        "--kind",
        "google",
        "--name",
        "Google",
        "--client-id",
        "123.apps.googleusercontent.com",
        "--client-secret-file",
        str(secret_file),
        "--json",
    )
    assert created.returncode == 0, created.stderr
    assert SECRET not in created.stdout + created.stderr
    body = json.loads(created.stdout)
    pid = body["id"]
    assert body["callback_url"] == f"{PUBLIC}/apps/{app.app_id}/federation/{pid}/callback"
    assert body["issuer"] == "https://accounts.google.com"
    assert body["scopes"] == ["openid", "email", "profile"]
    assert body["trust_amr"] is False
    assert body["linking"] == "confirm"
    assert "client_secret" not in body
    assert "client_secret_sealed" not in body

    # Sealed at rest, bound to this app and provider (A2).
    sealed = sealed_of(settings, app, pid)
    assert SECRET not in sealed
    box = KeyRing.with_apps(settings.master_key, app)  # sealed with the app's key (K1)
    assert box.open(sealed, context=providers.seal_context(app.app_id, pid)).decode() == SECRET

    # Text mode says the same, plainly.
    text = run(
        settings,
        "create",
        "--app",
        app.app_id,
        "--kind",
        "oidc",
        "--name",
        "Corp SSO",
        "--issuer",
        "https://sso.corp.example/",
        "--client-id",
        "corp",
        "--client-secret-file",
        str(secret_file),
    )
    assert text.returncode == 0, text.stderr
    lines = dict(line.split(":", 1) for line in text.stdout.splitlines() if ":" in line)
    text_id = lines["provider_id"].strip()
    assert lines["callback_url"].strip() == (
        f"{PUBLIC}/apps/{app.app_id}/federation/{text_id}/callback"
    )
    assert SECRET not in text.stdout + text.stderr

    listed = json.loads(run(settings, "list", "--app", app.app_id, "--json").stdout)
    assert [p["id"] for p in listed] == [pid, text_id]
    assert listed[1]["issuer"] == "https://sso.corp.example"  # trailing slash dropped
    shown = run(settings, "show", pid, "--app", app.app_id)
    assert shown.returncode == 0
    assert SECRET not in shown.stdout
    assert json.loads(shown.stdout)["client_id"] == "123.apps.googleusercontent.com"

    events = audit_rows(settings, app)
    assert [(e, t) for e, t, _ in events] == [
        ("federation.provider_create", pid),
        ("federation.provider_create", text_id),
    ]
    assert all(SECRET not in details for _, _, details in events)


def test_secret_from_stdin_update_and_delete(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision(name="CLI Fed 2")
    created = run(
        settings,
        "create",
        "--app",
        app.app_id,
        "--kind",
        "github",
        "--name",
        "GitHub",
        "--client-id",
        "Iv1.abc",
        "--client-secret-file",
        "-",
        "--json",
        stdin=SECRET,
    )
    assert created.returncode == 0, created.stderr
    pid = json.loads(created.stdout)["id"]
    box = KeyRing.with_apps(settings.master_key, app)  # sealed with the app's key (K1)
    context = providers.seal_context(app.app_id, pid)
    assert box.open(sealed_of(settings, app, pid), context=context).decode() == SECRET

    new_secret = "rotated-" + SECRET
    updated = run(
        settings,
        "update",
        pid,
        "--app",
        app.app_id,
        "--client-secret-file",
        "-",
        "--no-jit-signup",
        "--linking",
        "never",
        "--button-label",
        "Sign in with GitHub",
        stdin=new_secret,
    )
    assert updated.returncode == 0, updated.stderr
    assert new_secret not in updated.stdout + updated.stderr
    body = json.loads(updated.stdout)
    assert body["jit_signup"] is False
    assert body["linking"] == "never"
    assert body["button_label"] == "Sign in with GitHub"
    assert box.open(sealed_of(settings, app, pid), context=context).decode() == new_secret

    refused = run(settings, "delete", pid, "--app", app.app_id)
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    deleted = run(settings, "delete", pid, "--app", app.app_id, "--yes", "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {"id": pid, "deleted": True}
    assert json.loads(run(settings, "list", "--app", app.app_id, "--json").stdout) == []

    events = audit_rows(settings, app)
    assert [e for e, _, _ in events] == [
        "federation.provider_create",
        "federation.provider_update",
        "federation.provider_delete",
    ]
    changed = json.loads(events[1][2])["changed"]
    assert "client_secret" in changed
    assert "linking" in changed
    assert all(SECRET not in d for _, _, d in events)


def test_the_secret_is_never_an_argument_and_bad_input_is_one_clear_line(
    settings: Settings, provision: Callable[..., AppRecord], tmp_path: Path
) -> None:
    app = provision(name="CLI Fed 3")
    as_argument = run(
        settings,
        "create",
        "--app",
        app.app_id,
        "--kind",
        "google",
        "--name",
        "G",
        "--client-id",
        "c",
        "--client-secret",
        SECRET,
        "--client-secret-file",
        "-",
        stdin=SECRET,
    )
    # Refused, and the value is not echoed back (nor taken as an abbreviation of
    # --client-secret-file and printed as a missing file's name).
    assert as_argument.returncode == 1, as_argument.stderr
    assert "never an argument" in as_argument.stderr
    assert SECRET not in as_argument.stdout + as_argument.stderr
    secret_file = tmp_path / "s"
    secret_file.write_text(SECRET)
    base = ["create", "--app", app.app_id, "--name", "X", "--client-id", "c"]
    cases = {
        "a provider of kind oidc needs --issuer": [
            *base,
            "--kind",
            "oidc",
            "--client-secret-file",
            str(secret_file),
        ],
        "the issuer must be an https URL": [
            *base,
            "--kind",
            "oidc",
            "--issuer",
            "ftp://x.example",
            "--client-secret-file",
            str(secret_file),
        ],
        "the client secret is empty": [
            *base,
            "--kind",
            "google",
            "--client-secret-file",
            str(tmp_path / "empty"),
        ],
        "cannot read the client secret file": [
            *base,
            "--kind",
            "google",
            "--client-secret-file",
            str(tmp_path / "missing"),
        ],
    }
    (tmp_path / "empty").write_text("\n")
    for message, args in cases.items():
        result = run(settings, *args)
        assert result.returncode == 1, (message, result.stdout)
        assert result.stderr.startswith("error: "), result.stderr
        assert message in result.stderr, result.stderr
        assert SECRET not in result.stderr
    assert json.loads(run(settings, "list", "--app", app.app_id, "--json").stdout) == []


def test_one_apps_provider_is_not_anothers(
    settings: Settings, provision: Callable[..., AppRecord], tmp_path: Path
) -> None:
    """B4: the CLI acts on one app at a time; A's provider id names nothing at B."""
    app_a, app_b = provision(name="CLI A"), provision(name="CLI B")
    secret_file = tmp_path / "s"
    secret_file.write_text(SECRET)
    created = run(
        settings,
        "create",
        "--app",
        app_a.app_id,
        "--kind",
        "google",
        "--name",
        "G",
        "--client-id",
        "c",
        "--client-secret-file",
        str(secret_file),
        "--json",
    )
    pid = json.loads(created.stdout)["id"]
    for command in (["show", pid], ["delete", pid, "--yes"], ["update", pid, "--name", "Y"]):
        result = run(settings, *command, "--app", app_b.app_id)
        assert result.returncode == 1, result.stdout
        assert "no provider" in result.stderr
    assert json.loads(run(settings, "list", "--app", app_b.app_id, "--json").stdout) == []
    assert run(settings, "show", pid, "--app", app_a.app_id).returncode == 0
