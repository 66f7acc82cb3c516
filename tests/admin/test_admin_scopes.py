"""B4: admin scopes go to client_credentials clients only, never to a user-facing grant."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from oneauth.admin.scopes import APP_ADMIN_SCOPES, READ_SCOPES, scopes_for_role
from oneauth.apps.models import AppRecord
from oneauth.oauth.clients import ClientError, ClientSpec
from oneauth.settings import Settings
from test_keys_rotation import cli


def spec(grants: set[str], scopes: set[str], **kw: object) -> ClientSpec:
    return ClientSpec(
        name="ops",
        kind="confidential",
        grant_types=frozenset(grants),
        scopes=frozenset(scopes),
        redirect_uris=("https://app.example.com/cb",) if "authorization_code" in grants else (),
        **kw,  # type: ignore[arg-type]
    )


def test_a_client_credentials_client_may_hold_admin_scopes() -> None:
    assert spec({"client_credentials"}, set(APP_ADMIN_SCOPES)).validated().scopes == (
        APP_ADMIN_SCOPES
    )


@pytest.mark.parametrize(
    "grants",
    [
        {"authorization_code"},
        {"authorization_code", "refresh_token"},
        {"client_credentials", "authorization_code"},
        {"client_credentials", "refresh_token"},
    ],
)
def test_a_user_facing_grant_may_not_hold_admin_scopes(grants: set[str]) -> None:
    with pytest.raises(ClientError, match="client_credentials"):
        spec(grants, {"openid", "admin:users:read"}).validated()


def test_unknown_admin_scopes_and_org_clients_are_refused() -> None:
    with pytest.raises(ClientError, match="unknown admin scope"):
        spec({"client_credentials"}, {"admin:users:delete"}).validated()
    with pytest.raises(ClientError, match="org client"):
        spec({"client_credentials"}, {"admin:users:read"}, org_id="org_x").validated()


def test_console_roles() -> None:
    assert scopes_for_role("viewer") == READ_SCOPES
    assert all(s.endswith(":read") for s in READ_SCOPES)
    assert "admin:users:read" in READ_SCOPES
    assert scopes_for_role("admin") == APP_ADMIN_SCOPES
    assert scopes_for_role("owner") == frozenset() == scopes_for_role(None)


def test_clients_create_takes_admin_scopes_for_client_credentials_only(
    provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    made = cli(
        settings,
        *("clients", "create", "--app", app.app_id, "--name", "ops", "--confidential"),
        *("--grant", "client_credentials", "--scopes", "admin:users:read,admin:users:write"),
        "--json",
    )
    assert made.returncode == 0, made.stderr
    assert set(json.loads(made.stdout)["scopes"]) == {"admin:users:read", "admin:users:write"}
    refused = cli(
        settings,
        *("clients", "create", "--app", app.app_id, "--name", "web", "--confidential"),
        *("--grant", "authorization_code", "--redirect-uri", "https://app.example.com/cb"),
        *("--scopes", "openid,admin:users:read"),
    )
    assert refused.returncode != 0
    assert "admin scopes are granted only to a client_credentials client" in refused.stderr
