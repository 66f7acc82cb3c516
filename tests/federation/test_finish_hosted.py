"""The hosted pages end to end for GitHub-style OAuth 2.0, and an upstream that is
down at the start (issue 14).

GitHub: the login page's button -> ``/federation/{id}/start`` -> the rig's GitHub
stand-in (its documented /login/oauth/authorize, /login/oauth/access_token, /user,
/user/emails; github.com is unreachable here) -> our callback -> the client's code ->
an ID token whose ``amr`` is ``["fed"]``.

Upstream down: discovery at a closed port, at a server that accepts and never
answers, or failing with 500: ``/start`` answers a clear 503 page; no flow, no
federation request, no transaction held while it waited, its socket closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from federation.rig.faults import FaultyOP, HangServer, closed_port
from federation.rig.github import GitHubStandIn
from oneauth.apps.models import AppRecord
from oneauth.federation import upstream
from oneauth.services import Services
from oneauth.settings import Settings

from ._core import idle_in_transaction
from ._finish import (
    Hosted,
    count,
    follow_to_client,
    hosted_app,
    id_token_at_client,
    login_page_start,
    rows,
    secret_register,
    to_upstream,
)


@pytest.fixture
async def upstream_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


def github_app(
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    github: GitHubStandIn,
    **spec: Any,
) -> Hosted:
    keep: dict[str, Any] = {}

    def register_at_github(uris: list[str]) -> Any:
        from federation.rig.node_op import RegisteredClient

        app = github.register_app(uris[0])
        return RegisteredClient(app.client_id, app.client_secret, tuple(uris), {})

    return hosted_app(
        settings,
        services,
        provision,
        kind="github",
        issuer=github.base_url,
        register=secret_register(register_at_github, keep),
        name="GitHub",
        **spec,
    )


async def test_github_sign_in_through_the_hosted_login_page(
    client: httpx.AsyncClient,
    upstream_http: httpx.AsyncClient,
    github: GitHubStandIn,
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
) -> None:
    hosted = github_app(settings, services, provision, github)
    user = github.add_user("octo-hosted@github.example", name="Octo Hosted")
    start, verifier = await login_page_start(client, hosted)
    assert start.startswith(f"{hosted.issuer}/federation/{hosted.provider_id}/start?flow=")
    authorize = await to_upstream(client, start)
    assert authorize.startswith(github.authorize_url + "?"), authorize
    callback = await github.sign_in(upstream_http, authorize, user)
    assert callback.startswith(hosted.callback + "?"), callback
    done = await follow_to_client(client, await client.get(callback))
    tokens, claims = await id_token_at_client(client, hosted, done, verifier)
    assert claims["amr"] == ["fed"]
    assert claims["email"] == "octo-hosted@github.example"
    assert claims["nonce"] == "n-fin"
    (identity,) = await rows(
        services, hosted.app, "SELECT issuer, subject, tokens_sealed FROM user_identities"
    )
    # GitHub's numeric id is the subject (never the login or the email).
    assert (identity["issuer"], identity["subject"]) == (github.base_url, str(user.id))
    assert identity["tokens_sealed"] is None  # keep_tokens is off
    me = await client.get(
        f"{hosted.base}/v1/me", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["email"] == "octo-hosted@github.example"


async def _start_refused(
    client: httpx.AsyncClient, services: Services, hosted: Hosted
) -> httpx.Response:
    start, _ = await login_page_start(client, hosted)
    response = await client.get(start)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "not answering" in response.text
    assert "Nothing was created" in response.text
    assert "location" not in response.headers
    for table in ("auth_flows", "federation_requests", "users", "sessions"):
        assert await count(services, hosted.app, table) == 0, table
    return response


async def test_start_answers_503_when_the_upstreams_discovery_is_down(
    client: httpx.AsyncClient,
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    faulty_op: FaultyOP,
) -> None:
    upstream.clear_caches()
    closed = hosted_app(
        settings,
        services,
        provision,
        kind="oidc",
        issuer=f"http://127.0.0.1:{closed_port()}",
        register=lambda _cb: ("s3cret", {"client_id": "down"}),
    )
    await _start_refused(client, services, closed)
    faulty_op.discovery_status = 500
    failing = hosted_app(
        settings,
        services,
        provision,
        kind="oidc",
        issuer=faulty_op.issuer,
        register=lambda _cb: ("s3cret", {"client_id": "failing"}),
    )
    await _start_refused(client, services, failing)
    audited = await rows(
        services,
        failing.app,
        "SELECT count(*) AS n FROM audit_log WHERE event = 'federation.start'",
    )
    assert audited[0]["n"] == 0


async def test_start_against_a_hanging_upstream_is_bounded_and_holds_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    hang_server: HangServer,
) -> None:
    upstream.clear_caches()
    hosted = hosted_app(
        settings,
        services,
        provision,
        kind="oidc",
        issuer=hang_server.url,
        register=lambda _cb: ("s3cret", {"client_id": "hang"}),
    )
    began = time.monotonic()
    pending = asyncio.create_task(_start_refused(client, services, hosted))
    while hang_server.accepted == 0 and not pending.done():  # noqa: ASYNC110 - a thread counts
        await asyncio.sleep(0.05)
    assert hang_server.accepted >= 1  # it waits on the upstream now ...
    assert await idle_in_transaction(services) == 0  # ... with no transaction open
    assert await count(services, hosted.app, "auth_flows") == 0
    await pending
    took = time.monotonic() - began
    assert took < upstream.TOTAL + 5, took  # the read timeout, bounded by TOTAL
    assert hang_server.wait_closed(5.0)  # and the socket is not kept
