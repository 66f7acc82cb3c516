"""Helpers for the multi-factor tests: TOTP codes computed here from the enrolment
secret (pyotp, RFC 6238), enrolment through the API, policy changes."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pyotp
import pytest

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services
from oneauth.settings import Settings

PASSWORD = "correct horse battery staple 42"


def unique_email(prefix: str = "mfa") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def code_for(secret: str, steps: int = 0) -> str:
    """The TOTP code ``steps`` time steps from now (30 s each)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def post(
    client: httpx.AsyncClient,
    app: AppRecord,
    path: str,
    body: dict[str, Any],
    token: str | None = None,
) -> httpx.Response:
    return await client.post(
        f"/apps/{app.app_id}{path}", json=body, headers=bearer(token) if token else {}
    )


async def signup(client: httpx.AsyncClient, app: AppRecord, email: str) -> dict[str, Any]:
    r = await post(client, app, "/v1/signup", {"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def login(
    client: httpx.AsyncClient, app: AppRecord, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await post(client, app, "/v1/login", {"email": email, "password": password})


async def enrol_totp(
    client: httpx.AsyncClient, app: AppRecord, token: str
) -> tuple[str, str, list[str]]:
    """Enrol a TOTP factor with an access token: (secret, factor_id, recovery codes)."""
    started = await post(client, app, "/v1/mfa/totp", {}, token)
    assert started.status_code == 201, started.text
    secret, factor_id = started.json()["secret"], started.json()["factor_id"]
    done = await post(
        client,
        app,
        "/v1/mfa/totp/confirm",
        {"factor_id": factor_id, "code": code_for(secret)},
        token,
    )
    assert done.status_code == 200, done.text
    return secret, factor_id, done.json().get("recovery_codes", [])


async def forget_last_step(services: Services, app: AppRecord) -> None:
    """Let the next code of the current step be accepted (tests that sign in twice
    within one 30-second step; the replay tests do not call this)."""
    async with services.router.enter(app) as conn:
        await conn.execute("UPDATE mfa_factors SET last_step = NULL WHERE kind = 'totp'")


async def clear_throttle(services: Services, app: AppRecord) -> None:
    async with services.router.enter(app) as conn:
        await conn.execute("DELETE FROM throttle")


async def mfa_login(
    client: httpx.AsyncClient, app: AppRecord, email: str, secret: str
) -> dict[str, Any]:
    """Password, then the TOTP code: the token set."""
    first = await login(client, app, email)
    assert first.status_code == 403, first.text
    r = await post(
        client,
        app,
        "/v1/login/mfa",
        {"flow_token": first.json()["flow_token"], "factor": "totp", "code": code_for(secret)},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def user_with_totp(
    client: httpx.AsyncClient, services: Services, app: AppRecord
) -> tuple[str, str, str, list[str]]:
    """A signed-up user with a confirmed TOTP factor: (email, secret, factor_id, codes)."""
    email = unique_email()
    tokens = await signup(client, app, email)
    secret, factor_id, codes = await enrol_totp(client, app, tokens["access_token"])
    await forget_last_step(services, app)
    return email, secret, factor_id, codes


@pytest.fixture
def configure(settings: Settings, services: Services) -> Callable[..., Any]:
    """Change an app's settings and wait until the running service sees them."""

    async def run(app: AppRecord, **values: Any) -> None:
        def change() -> None:
            with ops.connect(settings.operator_url) as conn:
                lifecycle.configure(conn, app.app_id, set_values=values)

        await asyncio.to_thread(change)
        for _ in range(200):
            record = await services.registry.get(app.app_id)
            if record is not None and all(record.settings.get(k) == v for k, v in values.items()):
                return
            await asyncio.sleep(0.02)
        pytest.fail("the service did not see the new settings")

    return run


@pytest.fixture
def mailbox(services: Services) -> MemoryBackend:
    assert services.delivery is not None
    backend = services.delivery.backend
    assert isinstance(backend, MemoryBackend)
    backend.messages.clear()
    return backend


@pytest.fixture
def deliver(services: Services) -> Callable[[AppRecord], Any]:
    """Run the service's delivery worker for one app."""

    async def run(app: AppRecord) -> Any:
        assert services.delivery is not None
        return await services.delivery.deliver_app(app)

    return run
