"""Item 9: the public URL follows the port served; a second checkout runs side by side."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from structlog.testing import capture_logs

from oneauth.asgi import create_app
from oneauth.localpg import LocalPostgresError, find_bindir, free_port, scratch_dir
from oneauth.settings import Settings


def _have_pg_binaries() -> bool:
    try:
        find_bindir()
    except LocalPostgresError:
        return False
    return True


@pytest.mark.parametrize(
    ("env", "public_url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"ONEAUTH_PORT": "8411"}, "http://127.0.0.1:8411"),
        ({"ONEAUTH_HOST": "0.0.0.0", "ONEAUTH_PORT": "8412"}, "http://127.0.0.1:8412"),  # noqa: S104
        ({"ONEAUTH_HOST": "::1", "ONEAUTH_PORT": "8413"}, "http://[::1]:8413"),
        ({"ONEAUTH_HOST": "localhost"}, "http://localhost:8000"),
        # Set explicitly, the public URL is what it says (a proxy may listen on 8000).
        (
            {"ONEAUTH_PORT": "8411", "ONEAUTH_PUBLIC_URL": "https://auth.example.com"},
            "https://auth.example.com",
        ),
        # Derived in development only: tests keep the fixed default.
        ({"ONEAUTH_ENV": "test", "ONEAUTH_PORT": "8411"}, "http://127.0.0.1:8000"),
    ],
)
def test_public_url_is_derived_from_host_and_port_in_development(
    env: dict[str, str], public_url: str
) -> None:
    settings = Settings.from_env(env)
    assert settings.public_url == public_url
    assert settings.issuer_for("demo") == public_url + "/apps/demo"


@pytest.mark.parametrize(
    ("public_url", "port", "warned"),
    [
        ("http://127.0.0.1:8000", 8411, True),
        ("http://localhost:8000", 8411, True),
        ("http://[::1]:8000", 8411, True),
        ("http://127.0.0.1", 8000, True),  # port 80
        ("http://127.0.0.1:8411", 8411, False),
        ("https://auth.example.com", 8411, False),  # behind a proxy: not ours to judge
    ],
)
def test_public_url_mismatch_on_loopback(public_url: str, port: int, warned: bool) -> None:
    settings = Settings(public_url=public_url, port=port)
    assert (settings.public_url_mismatch() is not None) is warned


def test_start_up_warns_when_links_would_name_another_port() -> None:
    settings = Settings(env="test", public_url="http://127.0.0.1:8000", port=8411)
    with capture_logs() as logs:
        create_app(settings, configure_logging=False)
        create_app(Settings(env="test", public_url="http://127.0.0.1:8411", port=8411))
    warnings = [e for e in logs if e["event"] == "public_url_port_mismatch"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["port"] == 8411


def test_settings_survive_the_trip_through_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ONEAUTH_PORT": "8411",
            "ONEAUTH_DATABASE_URL": "postgresql://svc:pw@127.0.0.1:5999/oneauth",
            "ONEAUTH_OPERATOR_DATABASE_URL": "postgresql://op:pw@127.0.0.1:5999/oneauth",
            "ONEAUTH_REGISTRY_CACHE_TTL": "2.5",
            "ONEAUTH_DEV_DB_PORT": "55001",
            "ONEAUTH_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        }
    )
    assert settings.trusted_proxies
    assert Settings.from_env(settings.to_environ()) == settings
    assert Settings.from_env(Settings().to_environ()) == Settings()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")}
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        check=False,
        timeout=180,
    )


@pytest.mark.skipif(not _have_pg_binaries(), reason="needs the Postgres server binaries")
def test_two_checkouts_run_their_embedded_postgres_side_by_side() -> None:
    roots = [scratch_dir("oneauth-checkout-"), scratch_dir("oneauth-checkout-")]
    data = [root / ".data" for root in roots]
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda d: _cli("dev", "db-url", "--data-dir", str(d)), data))
        for result in results:
            assert result.returncode == 0, result.stderr
            assert "starting the embedded development database" in result.stderr
        urls = [r.stdout.strip() for r in results]
        ports = {psycopg.conninfo.conninfo_to_dict(url)["port"] for url in urls}
        assert len(ports) == 2
        for url in urls:
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("oneauth_service",)
        # The port each picked is remembered: the next start uses it again.
        again = _cli("dev", "db-url", "--data-dir", str(data[0]))
        assert again.stdout.strip() == urls[0]
        assert "using the embedded development database" in again.stderr
        # ONEAUTH_DEV_DB_PORT moves a stopped cluster; a running one is not moved silently.
        wanted = str(free_port())
        moved = _cli(
            "dev", "db-url", "--data-dir", str(data[0]), env={"ONEAUTH_DEV_DB_PORT": wanted}
        )
        assert moved.returncode == 1
        assert "stop it" in moved.stderr
        assert _cli("dev", "stop-db", "--data-dir", str(data[0])).returncode == 0
        moved = _cli(
            "dev", "db-url", "--data-dir", str(data[0]), env={"ONEAUTH_DEV_DB_PORT": wanted}
        )
        assert moved.returncode == 0, moved.stderr
        assert psycopg.conninfo.conninfo_to_dict(moved.stdout.strip())["port"] == wanted
        with psycopg.connect(moved.stdout.strip()) as conn:
            conn.execute("SELECT 1")
    finally:
        for d, root in zip(data, roots, strict=True):
            _cli("dev", "stop-db", "--data-dir", str(d))
            shutil.rmtree(root, ignore_errors=True)
