"""examples/resource_server: the FastAPI resource server (oneauth_verifier's dependency,
role and org checks). Its own test suite runs here as a downstream service runs it,
``pytest -p oneauth.testing`` in its directory (a separate process, the plugin
starting its throwaway oneauth on this suite's Postgres server); and the API served
for one app refuses the tokens of another."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from starlette.types import ASGIApp

from oneauth.testing import OneauthApp, serve_asgi

from .conftest import EXAMPLES, load_example

orders_api = load_example("resource_server/orders_api.py")


def test_the_sample_suite_passes_through_the_plugin(pg_admin_dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "oneauth.testing", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLES / "resource_server",
        env={**env, "TEST_DATABASE_URL": pg_admin_dsn},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert "6 passed" in proc.stdout, tail


@pytest.fixture(scope="module")
def api(shop: OneauthApp) -> Iterator[str]:
    def make(_: str) -> ASGIApp:
        app: ASGIApp = orders_api.create_app(issuer=shop.issuer)
        return app

    with serve_asgi(make) as url:
        yield url


def test_role_and_org_checks_over_http(shop: OneauthApp, api: str) -> None:
    ada = shop.create_user(roles=["billing"], orgs={"acme": ["member"]})
    tokens = ada.sign_in(org="acme")
    me = httpx.get(f"{api}/me", headers=tokens.authorization)
    assert me.json() == {
        "sub": ada.id,
        "client_token": False,
        "roles": ["billing"],
        "org_id": shop.org("acme").id,
        "org_roles": ["member"],
    }
    assert httpx.get(f"{api}/invoices", headers=tokens.authorization).status_code == 200
    create = httpx.post(
        f"{api}/orgs/{shop.org('acme').id}/orders",
        json={"item": "anvil", "quantity": 1},
        headers=tokens.authorization,
    )
    assert create.status_code == 403
    assert 'error="insufficient_scope"' in create.headers["www-authenticate"]


def test_another_apps_tokens_are_refused(other_app: OneauthApp, api: str) -> None:
    """Cross-app: a user of app B, even with the same role and org slug, is not a
    caller of app A's API (another issuer, another audience, other keys)."""
    other = other_app
    bea = other.create_user(roles=["billing"], orgs={"acme": ["admin"]})
    refused = httpx.get(f"{api}/invoices", headers=bea.sign_in().authorization)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    machine = other.create_client(
        "batch", confidential=True, grant_types=["client_credentials"], scopes=["reports:read"]
    )
    token = other.client_token(machine)
    assert httpx.get(f"{api}/reports", headers=token.authorization).status_code == 401
