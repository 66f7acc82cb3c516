"""``oneauth webhooks create|list|deliveries|replay|delete``: the admin API's service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import httpx

from apiclient import signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._receiver import Receiver
from .conftest import make_worker


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ONEAUTH_ENV": "test",
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_MASTER_KEY": settings.master_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", "webhooks", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


async def test_cli_endpoint_lifecycle(
    services: Services,
    settings: Settings,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    name = f"cli-{app.app_id}"
    url = receiver.configure(name)
    made = cli(settings, "create", "--app", app.app_id, "--url", url, "--events",
               "user.created", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    receiver.expect(name, created["secret"])
    listed = cli(settings, "list", "--app", app.app_id, "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [created["id"]]
    assert created["secret"] not in listed.stdout
    # The CLI sealed the secret with the master key: the service's worker signs with it.
    await signup(client, app.app_id, f"cli-{uuid.uuid4().hex[:8]}@example.com")
    await make_worker(services).deliver_app(app)
    [got] = receiver.of(name)
    assert got.valid
    rows = cli(settings, "deliveries", created["id"], "--app", app.app_id, "--json")
    [row] = json.loads(rows.stdout)
    assert row["status"] == "delivered"
    again = cli(settings, "replay", str(row["id"]), "--app", app.app_id)
    assert again.returncode == 0, again.stderr
    await make_worker(services).deliver_app(app)
    assert len(receiver.of(name)) == 2
    # Another app knows neither the endpoint nor the delivery.
    other = provision()
    assert cli(settings, "replay", str(row["id"]), "--app", other.app_id).returncode != 0
    assert cli(settings, "deliveries", created["id"], "--app", other.app_id).returncode != 0
    assert cli(settings, "delete", created["id"], "--app", other.app_id).returncode != 0
    refused = cli(settings, "create", "--app", app.app_id, "--url", "http://example.com/h",
                  "--events", "user.created")  # fmt: skip
    assert refused.returncode != 0
    assert "https" in refused.stderr
    assert cli(settings, "delete", created["id"], "--app", app.app_id).returncode == 0
    assert json.loads(cli(settings, "list", "--app", app.app_id, "--json").stdout) == []
