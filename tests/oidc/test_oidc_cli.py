"""``oneauth clients`` for OIDC relying parties, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from jwcrypto import jwk

from oneauth.apps.models import AppRecord
from oneauth.settings import Settings


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", "clients", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_register_and_manage_a_web_app_client(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    created = run(
        settings,
        "create",
        "--app", app.app_id,
        "--name", "Shop web",
        "--confidential",
        "--redirect-uri", "https://shop.example.com/auth/callback",
        "--post-logout-redirect-uri", "https://shop.example.com/",
        "--scopes", "openid,email,profile",
        "--access-token-ttl", "900",
        "--refresh-token-ttl", "86400",
        "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    client_id, secret = body["client_id"], body["client_secret"]
    assert client_id.startswith("cl_")
    assert secret.startswith("ocs_")
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["first_party"] is False
    assert (body["access_token_ttl"], body["refresh_token_ttl"]) == (900, 86400)

    shown = run(settings, "show", client_id, "--app", app.app_id)
    assert shown.returncode == 0
    assert secret not in shown.stdout  # shown once, stored hashed
    listed = run(settings, "list", "--app", app.app_id, "--json")
    assert client_id in {c["client_id"] for c in json.loads(listed.stdout)}

    updated = run(
        settings, "update", client_id, "--app", app.app_id, "--first-party",
        "--access-token-ttl", "300", "--auth-method", "client_secret_post",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    after = json.loads(updated.stdout)
    assert after["first_party"] is True
    assert after["access_token_ttl"] == 300
    assert after["token_endpoint_auth_method"] == "client_secret_post"
    third = run(settings, "update", client_id, "--app", app.app_id, "--third-party")
    assert json.loads(third.stdout)["first_party"] is False

    too_long = run(settings, "update", client_id, "--app", app.app_id, "--access-token-ttl", "7200")
    assert too_long.returncode != 0
    assert "access token lifetime" in too_long.stderr
    fragment = run(
        settings, "create", "--app", app.app_id, "--name", "x",
        "--redirect-uri", "https://shop.example.com/cb#frag",
    )  # fmt: skip
    assert fragment.returncode != 0
    assert "fragment" in fragment.stderr

    rotated = run(settings, "rotate-secret", client_id, "--app", app.app_id, "--overlap", "60")
    assert rotated.returncode == 0
    assert "client_secret: ocs_" in rotated.stdout
    gone = run(settings, "delete", client_id, "--app", app.app_id, "--yes")
    assert gone.returncode == 0
    assert run(settings, "show", client_id, "--app", app.app_id).returncode != 0


def test_register_a_client_that_authenticates_with_its_key(
    settings: Settings, provision: Callable[..., AppRecord], tmp_path: Path
) -> None:
    app = provision()
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="web-2026")
    public = tmp_path / "jwks.json"
    public.write_text(json.dumps({"keys": [json.loads(key.export_public())]}))
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [json.loads(key.export_private())]}))
    base = ["create", "--app", app.app_id, "--name", "Keyed", "--confidential",
            "--redirect-uri", "https://keyed.example.com/cb",
            "--auth-method", "private_key_jwt"]  # fmt: skip
    refused = run(settings, *base, "--jwks-file", str(private))
    assert refused.returncode != 0
    assert "public keys only" in refused.stderr
    created = run(settings, *base, "--jwks-file", str(public), "--json")
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["jwks"]["keys"][0]["kid"] == "web-2026"
    rotate = run(settings, "rotate-secret", body["client_id"], "--app", app.app_id)
    assert rotate.returncode != 0
