"""I1 for the admin routes' own input: with an admin token that passes the guard,
no body, path or query value makes a directory, clients, providers, keys or settings
view answer 5xx (the generic fuzzers send user tokens, which the guard refuses first)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admin._support import admin_token, bearer
from oneauth.admin import models_rest as m
from oneauth.apps.models import AppRecord
from oneauth.settings import Settings as AppSettings

# (method, path with {org}/{client}/{provider}/{text} holes, body model or None)
ROUTES: list[tuple[str, str, type[msgspec.Struct] | None]] = [
    ("POST", "/roles", m.RoleCreate),
    ("PATCH", "/roles/{text}", m.RoleUpdate),
    ("DELETE", "/roles/{text}", None),
    ("POST", "/permissions", m.PermissionCreate),
    ("DELETE", "/permissions/{text}", None),
    ("POST", "/users/{text}/roles/{text}", None),
    ("GET", "/orgs/{text}", None),
    ("POST", "/orgs", m.AdminOrgCreate),
    ("PATCH", "/orgs/{org}", m.AdminOrgUpdate),
    ("POST", "/orgs/{org}/members", m.AdminMemberAdd),
    ("DELETE", "/orgs/{org}/members/{text}", None),
    ("POST", "/orgs/{org}/invitations", m.AdminInvitationCreate),
    ("DELETE", "/orgs/{org}/invitations/{text}", None),
    ("POST", "/clients", m.ClientCreate),
    ("PATCH", "/clients/{client}", m.ClientUpdate),
    ("GET", "/clients/{text}", None),
    ("POST", "/clients/{client}/secrets", m.SecretRotate),
    ("POST", "/providers", m.ProviderCreate),
    ("PATCH", "/providers/{provider}", m.ProviderUpdate),
    ("GET", "/providers/{text}", None),
    ("POST", "/keys/rotate", m.KeyRotate),
]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=80),
    st.sampled_from(["", "org:read", "#112233", "https://a.example/x", "billing", "a@b.example"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=8,
)
PATH_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/?#%"),
    min_size=1,
    max_size=80,
)


def bodies(model: type[msgspec.Struct]) -> st.SearchStrategy[dict[str, Any]]:
    names = list(model.__struct_fields__)
    return st.dictionaries(st.sampled_from([*names, "junk"]), VALUES, max_size=len(names) + 1)


@pytest.fixture
async def target(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: AppSettings
) -> dict[str, Any]:
    app = provision()
    h = bearer(await admin_token(client, settings, app))
    base = f"/apps/{app.app_id}/admin/v1"
    org = (await client.post(f"{base}/orgs", json={"name": "Fuzz"}, headers=h)).json()["id"]
    made = await client.post(
        f"{base}/clients",
        json={"name": "fuzz", "redirect_uris": ["https://a.example/cb"]},
        headers=h,
    )
    provider = await client.post(
        f"{base}/providers",
        json={"kind": "google", "name": "G", "client_id": "c", "client_secret": "s"},
        headers=h,
    )
    return {
        "base": base,
        "headers": h,
        "org": org,
        "client": made.json()["client"]["client_id"],
        "provider": provider.json()["id"],
    }


@pytest.mark.parametrize(
    ("method", "path", "model"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES]
)
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
async def test_admin_route_never_answers_5xx(
    client: httpx.AsyncClient,
    target: dict[str, Any],
    method: str,
    path: str,
    model: type[msgspec.Struct] | None,
    data: st.DataObject,
) -> None:
    filled = path.format(
        org=target["org"], client=target["client"], provider=target["provider"], text="{text}"
    )
    while "{text}" in filled:
        filled = filled.replace("{text}", data.draw(PATH_TEXT, label="path"), 1)
    body = data.draw(bodies(model), label="body") if model is not None else None
    r = await client.request(method, target["base"] + filled, json=body, headers=target["headers"])
    assert r.status_code < 500, (method, filled, body, r.text)
    assert r.status_code != 401, r.text  # the token passed: the view answered
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
