"""``oneauth clients create --org ORG_ID``, run as an operator runs it (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import httpx

from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._support import make_org, payload


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


async def test_clients_create_for_an_org(
    client: httpx.AsyncClient,
    settings: Settings,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    a, b = provision(), provision()
    acme = await make_org(services, a.app_id, "acme")
    await make_org(services, b.app_id, "acme")
    made = run(
        settings,
        "create", "--app", a.app_id, "--name", "Acme sync", "--confidential",
        "--grant", "client_credentials", "--scopes", "orders:read", "--org", acme, "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    assert body["org_id"] == acme
    answer = await client.post(
        f"/apps/{a.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(body["client_id"], body["client_secret"]),
    )
    assert answer.status_code == 200, answer.text
    assert payload(answer.json()["access_token"])["org_slug"] == "acme"
    listed = run(settings, "show", body["client_id"], "--app", a.app_id)
    assert json.loads(listed.stdout)["org_id"] == acme

    # A's org id at B, an unknown id, and an org client without client_credentials: refused.
    for app_id, extra in (
        (b.app_id, ["--grant", "client_credentials", "--org", acme]),
        (a.app_id, ["--grant", "client_credentials", "--org", "org_" + "z" * 22]),
        (a.app_id, ["--grant", "authorization_code", "--redirect-uri", "https://x.test/cb",
                    "--org", acme]),
    ):  # fmt: skip
        refused = run(settings, "create", "--app", app_id, "--name", "X", "--confidential", *extra)
        assert refused.returncode != 0
        assert "org" in refused.stderr, refused.stderr
