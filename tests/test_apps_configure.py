"""``oneauth apps configure`` (issue 10 item 14): per-app settings after provisioning.

Validated by the one policy parser, audited in the app's log, in effect on a
running service as soon as the registry's change notice arrives, and confined to
the app it names; ``apps show`` prints the effective settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import AppPolicy
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.settings import Settings


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")},
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_PUBLIC_URL": "https://auth.example.com",
    }
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", "apps", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
async def long_cache_service(settings: Settings) -> AsyncIterator[Starlette]:
    """A service whose registry cache would keep a record for 10 minutes: only the
    change notice can make it see a new setting in time."""
    app = create_app(replace(settings, registry_cache_ttl=600), configure_logging=False)
    async with app.router.lifespan_context(app):
        yield app


async def _start_passwordless(http: httpx.AsyncClient, app_id: str) -> int:
    response = await http.post(
        f"/apps/{app_id}/v1/passwordless/start",
        json={"email": "someone@example.com", "method": "code"},
    )
    return response.status_code


async def test_configure_takes_effect_on_a_running_service_within_the_notice(
    long_cache_service: Starlette, settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    a, b = provision(), provision()
    transport = httpx.ASGITransport(app=long_cache_service)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        # Both records are now cached for 10 minutes.
        assert await _start_passwordless(http, a.app_id) == 403
        assert await _start_passwordless(http, b.app_id) == 403
        done = await asyncio.to_thread(
            cli, settings, "configure", a.app_id, "--set", "passwordless=true"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{a.app_id}: passwordless: (default) -> true"
        for _ in range(100):
            if await _start_passwordless(http, a.app_id) == 202:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the running service did not see the new setting within 2 s")
        # App B is untouched, in the registry and in the running service.
        assert await _start_passwordless(http, b.app_id) == 403
    with ops.connect(settings.operator_url) as conn:
        record_b = lifecycle.get(conn, b.app_id)
    assert record_b is not None
    assert record_b.settings == {}


def test_configure_is_audited_in_the_apps_own_log(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    a, b = provision(), provision()
    assert cli(settings, "configure", a.app_id, "--set", "access_token_ttl=300").returncode == 0
    done = cli(
        settings,
        "configure",
        a.app_id,
        "--set",
        "access_token_ttl=900",
        "--set",
        "primary_color=#112233",
    )
    assert done.returncode == 0, done.stderr
    with ops.connect(settings.operator_url) as conn, conn.transaction():
        rows = {}
        for app in (a, b):
            with ops.app_context(conn, app.names):
                rows[app.app_id] = conn.execute(
                    "SELECT actor_type, target_id, details FROM audit_log"
                    " WHERE event = 'app.configure' ORDER BY id"
                ).fetchall()
    assert [r[2]["changes"] for r in rows[a.app_id]] == [
        {"access_token_ttl": {"old": None, "new": 300}},
        {
            "access_token_ttl": {"old": 300, "new": 900},
            "primary_color": {"old": None, "new": "#112233"},
        },
    ]
    assert {(r[0], r[1]) for r in rows[a.app_id]} == {("operator", a.app_id)}
    assert rows[b.app_id] == []  # nothing in the other app's log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "pasword=true"], "unknown app setting 'pasword'; did you mean passwordless?"),
        (["--unset", "logo"], "unknown app setting 'logo'; did you mean logo_url?"),
        (["--set", "passwordless=maybe"], "passwordless must be true or false"),
        (["--set", "access_token_ttl=5"], "access_token_ttl must be an integer from 60 to 3600"),
        (["--set", "signing_alg=HS256"], "signing_alg must be one of"),
        (["--set", "refresh_idle_ttl=31536000"], "refresh_idle_ttl must not exceed"),
        (["--set", "passwordless"], "--set 'passwordless': expected KEY=VALUE"),
        (["--set", "passwordless=true", "--unset", "passwordless"], "both set and unset"),
        ([], "nothing to change"),
    ],
)
def test_bad_keys_and_values_are_refused_naming_the_key(
    settings: Settings, provision: Callable[..., AppRecord], args: list[str], message: str
) -> None:
    app = provision(app_settings={"passwordless": False})
    done = cli(settings, "configure", app.app_id, *args)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    with ops.connect(settings.operator_url) as conn:
        record = lifecycle.get(conn, app.app_id)
    assert record is not None
    assert record.settings == {"passwordless": False}  # nothing changed


def test_unset_restores_the_default_and_show_prints_effective_settings(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    done = cli(
        settings,
        "configure",
        app.app_id,
        "--set",
        "access_token_ttl=120",
        "--set",
        "require_verified_email=true",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["settings"] == {"access_token_ttl": 120, "require_verified_email": True}
    assert body["effective_settings"]["access_token_ttl"] == 120
    # Defaults merged in, one entry per key the policy declares.
    from oneauth.apps.policy import setting_names

    assert set(body["effective_settings"]) == set(setting_names())
    assert body["effective_settings"]["refresh_idle_ttl"] == AppPolicy().refresh_idle_ttl

    shown = cli(settings, "show", app.app_id)
    assert shown.returncode == 0, shown.stderr
    assert "* access_token_ttl:" in shown.stdout
    assert "120" in shown.stdout
    assert f"  {'refresh_idle_ttl:':<24} {AppPolicy().refresh_idle_ttl}" in shown.stdout

    undone = cli(settings, "configure", app.app_id, "--unset", "access_token_ttl")
    assert undone.returncode == 0, undone.stderr
    assert undone.stdout.strip() == f"{app.app_id}: access_token_ttl: 120 -> (default)"
    after = json.loads(cli(settings, "show", app.app_id, "--json").stdout)
    assert after["settings"] == {"require_verified_email": True}
    assert after["effective_settings"]["access_token_ttl"] == AppPolicy().access_token_ttl
    again = cli(settings, "configure", app.app_id, "--unset", "access_token_ttl")
    assert again.stdout.strip() == f"app {app.app_id}: no change"


def test_values_parse_as_json_else_as_strings(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    with ops.connect(settings.operator_url) as conn:
        result = lifecycle.configure(
            conn,
            app.app_id,
            set_values={
                "access_token_ttl": lifecycle.parse_setting_value("900"),
                "passwordless": lifecycle.parse_setting_value("true"),
                "logo_url": lifecycle.parse_setting_value("https://cdn.example.com/logo.png"),
                "email_from_name": lifecycle.parse_setting_value('"1234"'),
            },
        )
    assert result.app.settings == {
        "access_token_ttl": 900,
        "passwordless": True,
        "logo_url": "https://cdn.example.com/logo.png",
        "email_from_name": "1234",
    }


def test_configure_refuses_deleted_and_unknown_apps(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    with ops.connect(settings.operator_url) as conn:
        lifecycle.delete(conn, app.app_id)
    gone = cli(settings, "configure", app.app_id, "--set", "passwordless=true")
    assert gone.returncode == 1
    assert "is deleted" in gone.stderr
    missing = cli(settings, "configure", "no-such-app", "--set", "passwordless=true")
    assert missing.returncode == 1
    assert "no app 'no-such-app'" in missing.stderr


def test_concurrent_configures_of_one_app_both_land(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    """Each change merges into the row it locked: neither overwrites the other."""
    from concurrent.futures import ThreadPoolExecutor

    app = provision()
    keys = [("access_token_ttl", 300), ("id_token_ttl", 300), ("passwordless", True)] * 3

    def one(item: tuple[str, object]) -> None:
        with ops.connect(settings.operator_url) as conn:
            lifecycle.configure(conn, app.app_id, set_values={item[0]: item[1]})

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        list(pool.map(one, keys))
    with ops.connect(settings.operator_url) as conn:
        record = lifecycle.get(conn, app.app_id)
        assert record is not None
        assert record.settings == {
            "access_token_ttl": 300,
            "id_token_ttl": 300,
            "passwordless": True,
        }
        with conn.transaction(), ops.app_context(conn, app.names):
            audited = conn.execute(
                "SELECT count(*) FROM audit_log WHERE event = 'app.configure'"
            ).fetchone()
    assert audited is not None
    assert audited[0] == 3  # the repeats changed nothing and left no row
