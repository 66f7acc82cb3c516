"""B4: per-app operator views (clients, keys, audit log) show only their own app."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from apiclient import confidential_client, signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings
from test_keys_rotation import cli


async def test_clients_and_keys_are_listed_per_app(
    provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    client_a, _ = confidential_client(settings, a)
    listed_a = json.loads(cli(settings, "clients", "list", "--app", a.app_id, "--json").stdout)
    listed_b = json.loads(cli(settings, "clients", "list", "--app", b.app_id, "--json").stdout)
    assert client_a in {c["client_id"] for c in listed_a}
    assert client_a not in {c["client_id"] for c in listed_b}
    shown = cli(settings, "clients", "show", client_a, "--app", b.app_id)
    assert shown.returncode == 1
    assert "no client" in shown.stderr
    keys_a = {
        k["kid"] for k in json.loads(cli(settings, "keys", "list", a.app_id, "--json").stdout)
    }
    keys_b = {
        k["kid"] for k in json.loads(cli(settings, "keys", "list", b.app_id, "--json").stdout)
    }
    assert len(keys_a) == len(keys_b) == 4
    assert not keys_a & keys_b


async def test_audit_log_rows_stay_in_their_app(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    a, b = provision(), provision()
    tokens = await signup(client, a.app_id, "audit-boundary@example.com")
    async with services.router.app(a.app_id) as conn:
        in_a = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE actor_id = $1", tokens["user"]["id"]
        )
    async with services.router.app(b.app_id) as conn:
        in_b = await conn.fetchval("SELECT count(*) FROM audit_log")
    assert in_a >= 2  # signup + login
    assert in_b == 0
