"""Start-up checks and the log stream (issue 10 item 13).

Unknown ONEAUTH_* variables and bad log levels stop start-up; records of other
libraries come out as the same JSON lines as ours; security events (refresh
token replay, lockouts, emergency key rotation) are in the log stream too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import fields

import httpx
import pytest
import structlog

from apiclient import age_refresh_use, default_client_id, login, refresh, signup
from oneauth import logs
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings, SettingsError


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")}
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        check=False,
        timeout=60,
    )


def test_an_unknown_variable_is_refused_with_the_closest_known_name() -> None:
    with pytest.raises(
        SettingsError, match=r"ONEAUTH_PROT: unknown variable; did you mean ONEAUTH_PORT\?"
    ):
        Settings.from_env({"ONEAUTH_PROT": "8411"})
    with pytest.raises(SettingsError, match=r"^ONEAUTH_ZZZZ: unknown variable \("):
        Settings.from_env({"ONEAUTH_ZZZZ": "1"})  # nothing close: no suggestion


def test_the_cli_refuses_to_start_with_a_typo(settings: Settings) -> None:
    result = _cli({"ONEAUTH_DATABASE_URL": settings.database_url, "ONEAUTH_PROT": "8411"}, "serve")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: configuration: ONEAUTH_PROT: unknown variable; did you mean ONEAUTH_PORT? "
        "(see README, Configuration)"
    ]


def test_every_declared_setting_is_a_known_variable() -> None:
    from oneauth.settings import ALSO_READ, check_known_variables

    # Derived from the one declaration: a setting added to Settings is known at once.
    names = {f"ONEAUTH_{f.name.upper()}": "" for f in fields(Settings)}
    check_known_variables({**names, **dict.fromkeys(ALSO_READ, "")})
    assert Settings.from_env({"ONEAUTH_PORT": "8411", "OTHER_PROT": "x"}).port == 8411


@pytest.mark.parametrize("level", ["verbose", "warn", "10", "INFOO"])
def test_a_bad_log_level_is_refused(level: str) -> None:
    with pytest.raises(SettingsError, match="ONEAUTH_LOG_LEVEL: must be one of debug, info"):
        Settings.from_env({"ONEAUTH_LOG_LEVEL": level})
    with pytest.raises(ValueError, match="log level must be one of"):
        logs.configure("json", level)
    assert Settings.from_env({"ONEAUTH_LOG_LEVEL": "WARNING"}).log_level == "warning"


def test_other_libraries_records_come_out_as_json_lines() -> None:
    script = textwrap.dedent(
        """
        import logging
        import uvicorn
        from oneauth import logs
        from oneauth.cli.serve import uvicorn_options

        logs.configure("json", "info")
        # What `oneauth serve` hands uvicorn must not bring its own handlers back.
        options = uvicorn_options("127.0.0.1", 1, 1)
        uvicorn.Config("oneauth.asgi:create_app", **options).configure_logging()
        logging.getLogger("uvicorn.error").warning("Started server process [%d]", 42)
        logging.getLogger("uvicorn.access").warning("GET / 200")
        logging.getLogger("uvicorn.access").info("GET / 200 (info: below the level)")
        logging.getLogger("asyncpg.pool").warning("pool is closing")
        logging.getLogger("psycopg").error("connection lost", extra={"password": "hunter2"})
        try:
            1 / 0
        except ZeroDivisionError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        logging.getLogger("asyncpg").debug("below the level: not written")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert result.stdout == ""
    assert [(e["logger"], e["level"], e["event"]) for e in lines] == [
        ("uvicorn.error", "warning", "Started server process [42]"),
        ("uvicorn.access", "warning", "GET / 200"),
        ("asyncpg.pool", "warning", "pool is closing"),
        ("psycopg", "error", "connection lost"),
        ("uvicorn.error", "error", "Exception in ASGI application"),
    ]
    assert all("timestamp" in e for e in lines)
    assert "ZeroDivisionError" in lines[-1]["exception"]
    assert "hunter2" not in result.stderr


async def test_a_refresh_token_replay_is_a_security_log_line(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    cid = await default_client_id(client, app.app_id)
    tokens = await signup(client, app.app_id, "replayed@example.com")
    assert (await refresh(client, app.app_id, cid, tokens["refresh_token"])).status_code == 200
    await age_refresh_use(services, app.app_id, tokens["refresh_token"], 60)  # past the grace
    with structlog.testing.capture_logs() as captured:
        replay = await refresh(client, app.app_id, cid, tokens["refresh_token"])
    assert replay.status_code == 400
    security = [e for e in captured if e.get("security") is True]
    assert [(e["event"], e["log_level"], e["outcome"]) for e in security] == [
        ("token.refresh_reuse", "warning", "denied")
    ]
    assert security[0]["target_type"] == "session"
    assert security[0]["actor_id"] == cid
    assert tokens["refresh_token"] not in repr(captured)
    assert "replayed@example.com" not in repr(captured)


async def test_a_lockout_is_a_security_log_line(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    await signup(client, app.app_id, "locked@example.com")
    with structlog.testing.capture_logs() as captured:
        for n in range(15):
            response = await login(client, app.app_id, "locked@example.com", f"guess {n}")
            if response.status_code == 429:
                break
    assert response.status_code == 429
    security = [e for e in captured if e.get("security") is True]
    assert [(e["event"], e["outcome"]) for e in security] == [("auth.login", "denied")]
    assert security[0]["details"] == {"reason": "throttled"}
    assert "locked@example.com" not in repr(captured)


def test_an_emergency_key_rotation_is_a_security_log_line(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    env = {
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_LOG_FORMAT": "json",
    }
    result = _cli(env, "keys", "rotate", app.app_id, "--emergency", "--json")
    assert result.returncode == 0, result.stderr
    revoked = json.loads(result.stdout)["revoked"]  # stdout stays the command's output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    security = [e for e in events if e.get("security") is True]
    assert len(security) == 1
    assert security[0]["event"] == "keys.emergency_rotation"
    assert security[0]["level"] == "warning"
    assert security[0]["app_id"] == app.app_id
    assert security[0]["details"]["revoked"] == revoked
