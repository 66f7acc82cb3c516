"""Helpers of the authorization-request tests of issue 13 (tests/orgs/test_authorize_org*):
orgs made with plain SQL in the app's schema (through the router, as the service
reads them), a relying party registered for the ``organization`` scope, and a
driver through the hosted pages."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

import httpx

from oidc._support import (
    PASSWORD,
    RP,
    authorize_params,
    challenge_of,
    exchange,
    forms,
    jwt_claims,
    query,
    register,
)
from oneauth.apps.models import AppRecord
from oneauth.oauth.clients import USER_SCOPES
from oneauth.services import Services
from oneauth.settings import Settings

ORG_SCOPES = (*USER_SCOPES, "organization")

__all__ = [
    "ORG_SCOPES",
    "PASSWORD",
    "RP",
    "add_member",
    "authorize",
    "drive",
    "exchange",
    "jwt_claims",
    "make_org",
    "query",
    "register_rp",
    "set_org",
    "tokens_for",
]


def register_rp(settings: Settings, app: AppRecord, **kwargs: Any) -> str:
    """A public client of ``app`` that may ask for organizations."""
    kwargs.setdefault("scopes", ORG_SCOPES)
    client_id, _ = register(settings, app, **kwargs)
    return client_id


async def make_org(
    services: Services,
    app: AppRecord,
    slug: str,
    *,
    name: str | None = None,
    members: Iterable[str] = (),
    status: str = "active",
    mfa_required: bool = False,
    branding: dict[str, Any] | None = None,
) -> str:
    org_id = "org_" + secrets.token_urlsafe(16)
    async with services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO organizations (id, slug, name, status, mfa_required, branding)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            org_id,
            slug,
            name or slug.title(),
            status,
            mfa_required,
            json.dumps(branding or {}),
        )
        for sub in members:
            await _join(conn, org_id, sub)
    return org_id


async def _join(conn: Any, org_id: str, sub: str, role: str = "member") -> None:
    """Membership with one of the app's template org roles."""
    await conn.execute(
        "INSERT INTO org_members (org_id, user_id, joined_via) VALUES ($1, $2, 'operator')",
        org_id,
        uuid.UUID(sub),
    )
    await conn.execute(
        "INSERT INTO org_member_roles (org_id, user_id, org_role_id) SELECT $1, $2, id"
        " FROM org_roles WHERE org_id IS NULL AND name = $3",
        org_id,
        uuid.UUID(sub),
        role,
    )


async def add_member(
    services: Services, app: AppRecord, org_id: str, sub: str, role: str = "member"
) -> None:
    async with services.router.enter(app) as conn:
        await _join(conn, org_id, sub, role)


async def set_org(services: Services, app: AppRecord, org_id: str, sql: str, *args: Any) -> None:
    """``UPDATE organizations SET <sql> WHERE id = $1`` (or any statement on $1)."""
    async with services.router.enter(app) as conn:
        await conn.execute(sql, org_id, *args)


async def authorize(
    http: httpx.AsyncClient, app: AppRecord, client_id: str, verifier: str, **extra: str
) -> httpx.Response:
    params = authorize_params(client_id, challenge_of(verifier), **extra)
    return await http.get(f"/apps/{app.app_id}/oauth/authorize", params=params)


async def drive(
    http: httpx.AsyncClient,
    response: httpx.Response,
    *,
    email: str,
    pick: str | None = None,
    consent: str = "allow",
) -> httpx.Response:
    """Follow the hosted pages from ``response`` (password, org picker with ``pick``,
    consent) to the redirect to the client; returns the first page it cannot fill
    (a second factor, the picker without ``pick``) or that redirect."""
    for _ in range(10):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            if location.startswith(RP):
                return response
            response = await http.get(location)
            continue
        if response.status_code != 200:
            return response
        found = forms(response.text)
        if len(found) != 1:
            return response
        page = found[0]
        data = dict(page.fields)
        if "password" in data:
            data.update(email=email, password=PASSWORD)
        elif page.action.endswith("/oauth/authorize/organization"):
            if pick is None:
                return response
            data["organization_id"] = pick
        elif ("decision", "allow") in page.buttons:
            data["decision"] = consent
        else:
            return response
        response = await http.post(page.action, data=data)
    raise AssertionError("the flow did not end")


async def tokens_for(
    http: httpx.AsyncClient, app: AppRecord, client_id: str, response: httpx.Response, verifier: str
) -> dict[str, Any]:
    result = query(response.headers["location"])
    assert "code" in result, result
    answer = await exchange(http, app.app_id, client_id, result["code"], verifier)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
