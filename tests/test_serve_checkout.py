"""Item 12: ``oneauth serve`` inside a checkout serves from the embedded database.

A real subprocess in a checkout-like directory (``.data/pg`` made by ``oneauth
dev``), with no ONEAUTH_DATABASE_URL: uvicorn's worker must get the embedded
cluster's URL, and a stopped cluster is started with a note saying so.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from oneauth.localpg import LocalPostgresError, find_bindir, free_port, scratch_dir


def _have_pg_binaries() -> bool:
    try:
        find_bindir()
    except LocalPostgresError:
        return False
    return True


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")}
    return {**clean, "ONEAUTH_ENV": "development", "ONEAUTH_LOG_FORMAT": "json", **extra}


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        check=False,
        timeout=180,
    )


@pytest.mark.skipif(not _have_pg_binaries(), reason="needs the Postgres server binaries")
def test_serve_in_a_checkout_uses_and_starts_the_embedded_database() -> None:
    checkout = scratch_dir("oneauth-checkout-")
    server: subprocess.Popen[str] | None = None
    try:
        made = _cli(checkout, "dev", "db-url")
        assert made.returncode == 0, made.stderr
        migrated = _cli(checkout, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        provisioned = _cli(checkout, "apps", "provision", "shop", "--name", "Shop")
        assert provisioned.returncode == 0, provisioned.stderr
        assert _cli(checkout, "dev", "stop-db").returncode == 0

        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "oneauth.cli.main", "serve"],
            env=_env(ONEAUTH_PORT=str(port)),
            cwd=checkout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if ready is None or ready.status_code != 200:
            server.kill()
            _, err = server.communicate(timeout=10)
            pytest.fail(f"/readyz never answered 200; exit {server.returncode}:\n{err[-3000:]}")
        app = httpx.get(f"{base}/apps/shop/v1/app", timeout=5)
        assert app.status_code == 200
        # Item 9: with ONEAUTH_PUBLIC_URL unset, the issuer names the port served.
        assert app.json()["issuer"] == f"http://127.0.0.1:{port}/apps/shop"
        os.killpg(server.pid, signal.SIGTERM)
        _, err = server.communicate(timeout=30)
        assert "note: starting the embedded development database" in err
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        _cli(checkout, "dev", "stop-db")
        shutil.rmtree(checkout, ignore_errors=True)
