"""The platform seam (oneauth.admin.guard.authenticate_platform): tokens of the
platform app's own clients only. Here any app stands in for the reserved platform
app (which the platform branch provisions); the pins are the same."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from admin._support import admin_client, platform_client, token_of
from apiclient import signup
from oneauth.admin.guard import AdminCaller, authenticate_platform, platform_operation
from oneauth.apps.models import AppRecord
from oneauth.errors import InsufficientScope, InvalidToken, Unauthorized
from oneauth.http.contract import Operation, declared
from oneauth.services import Services
from oneauth.settings import Settings


async def test_platform_tokens_only(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    platform, other = provision(), provision()
    cid, secret = platform_client(settings, platform, {"platform:apps:read"})
    token = await token_of(client, platform.app_id, cid, secret)
    async with services.router.enter(platform) as conn:
        caller = await authenticate_platform(services, platform, conn, token, "platform:apps:read")
        assert (caller.actor_type, caller.actor_id, caller.app) == ("client", cid, platform)
        with pytest.raises(InsufficientScope):
            await authenticate_platform(services, platform, conn, token, "platform:apps:write")
        with pytest.raises(Unauthorized):
            await authenticate_platform(services, platform, conn, None, "platform:apps:read")
        app_cid, app_secret = admin_client(settings, other)
        app_token = await token_of(client, other.app_id, app_cid, app_secret)
        with pytest.raises(InvalidToken):  # an app's admin token at the platform
            await authenticate_platform(services, platform, conn, app_token, "platform:apps:read")
        user = await signup(client, platform.app_id, "platform-user@example.com")
        with pytest.raises(InsufficientScope):
            await authenticate_platform(
                services, platform, conn, user["access_token"], "platform:apps:read"
            )


def test_platform_operation_declares_its_scope_and_tag() -> None:
    @platform_operation(Operation("List apps", responses={200: dict}), scope="platform:apps:read")
    async def view(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
        raise AssertionError

    op = declared(view)
    assert op is not None
    assert (op.admin, op.admin_scope, op.tags) == (True, "platform:apps:read", ("platform",))
    assert {401, 403} <= set(op.errors)
    with pytest.raises(ValueError, match="not a platform scope"):
        platform_operation(Operation("x"), scope="admin:users:read")
