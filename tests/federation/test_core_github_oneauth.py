"""Federation through GitHub-style OAuth 2.0 (the rig's stand-in for github.com, which
the test machines cannot reach: /login/oauth/*, /user, /user/emails) and through a
second oneauth app acting as the upstream OpenID Provider (issue 14)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest

from federation.rig.github import GitHubStandIn
from federation.rig.oneauth_app import OneauthUpstream
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.federation import providers
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.strategies import upstream as strategy

from ._core import (
    begin,
    callback,
    callback_url,
    counts,
    fetch,
    first_party_client,
    make_provider,
    query,
)


@pytest.fixture
def fed_app(provision: Callable[..., AppRecord], settings: Settings) -> AppRecord:
    app = provision(name="Social Shop")
    first_party_client(settings, app)
    return app


def github_provider(settings: Settings, app: AppRecord, gh: GitHubStandIn) -> providers.Provider:
    registered = gh.register_app("http://placeholder.invalid/cb")
    provider = make_provider(
        settings,
        app,
        kind="github",
        name="GitHub",
        issuer=gh.base_url,
        client_id=registered.client_id,
        secret=registered.client_secret,
    )
    gh.set_callback(registered, callback_url(settings, app, provider.id))
    return provider


async def at_github(
    gh: GitHubStandIn, url: str, user: object, *, allow: bool = True
) -> dict[str, str]:
    async with httpx.AsyncClient() as http:
        return query(await gh.sign_in(http, url, user, allow=allow))  # type: ignore[arg-type]


async def test_github_sign_in_uses_the_numeric_id_and_the_verified_primary_email(
    github: GitHubStandIn, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    provider = github_provider(settings, fed_app, github)
    assert provider.scopes == ("read:user", "user:email")
    user = github.add_user("octo@github.example", login="octocat")
    started, browser = await begin(services, fed_app, provider.id)
    sent = query(started.authorize_url)
    assert sent["scope"] == "read:user user:email"
    assert "nonce" not in sent
    outcome = await callback(
        services,
        fed_app,
        provider.id,
        await at_github(github, started.authorize_url, user),
        browser,
    )
    assert isinstance(outcome, strategy.SignedIn), outcome
    assert outcome.user.email == "octo@github.example"
    assert outcome.user.email_verified
    rows = await fetch(services, fed_app, "SELECT issuer, subject FROM user_identities")
    assert [(r["issuer"], r["subject"]) for r in rows] == [(github.base_url, str(user.id))]

    # Renamed login, new primary address: still the same user (keyed by the id).
    user.login = "octocat-renamed"
    github.users["octocat-renamed"] = user
    user.emails[0].email = "new-octo@github.example"
    started, browser = await begin(services, fed_app, provider.id)
    again = await callback(
        services,
        fed_app,
        provider.id,
        await at_github(github, started.authorize_url, user),
        browser,
    )
    assert isinstance(again, strategy.SignedIn)
    assert again.user.id == outcome.user.id


async def test_github_unverified_primary_email_and_cancel_are_refused(
    github: GitHubStandIn, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    provider = github_provider(settings, fed_app, github)
    before = await counts(services, fed_app)
    unverified = github.add_user("unverified@github.example", verified=False)
    started, browser = await begin(services, fed_app, provider.id)
    params = await at_github(github, started.authorize_url, unverified)
    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "email_unverified"

    started, browser = await begin(services, fed_app, provider.id)
    params = await at_github(github, started.authorize_url, github.add_user(), allow=False)
    assert params["error"] == "access_denied"
    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "upstream_error"
    assert await counts(services, fed_app) == before


async def test_github_wrong_client_secret_is_a_refused_exchange(
    github: GitHubStandIn, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    """GitHub answers token errors with HTTP 200 and an ``error`` member."""
    registered = github.register_app("http://placeholder.invalid/cb")
    provider = make_provider(
        settings,
        fed_app,
        kind="github",
        issuer=github.base_url,
        client_id=registered.client_id,
        secret="not-the-secret",
    )
    github.set_callback(registered, callback_url(settings, fed_app, provider.id))
    started, browser = await begin(services, fed_app, provider.id)
    params = await at_github(github, started.authorize_url, github.add_user("x@github.example"))
    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "token_exchange_failed"
    assert (await counts(services, fed_app))["users"] == 0


@pytest.fixture
async def loopback_services(settings: Settings) -> AsyncIterator[Services]:
    """A service whose public URL is a loopback one: U accepts plain http redirect
    URIs only for loopback (the callback is read by the test, never contacted)."""
    loopback = replace(settings, public_url="http://127.0.0.1:9", pool_max_size=4)
    app = create_app(loopback, configure_logging=False)
    async with app.router.lifespan_context(app):
        yield app.state.services


async def test_a_second_oneauth_app_as_the_upstream(
    oneauth_upstream: OneauthUpstream,
    fed_app: AppRecord,
    loopback_services: Services,
) -> None:
    """App U (our own OP, on a live server) signs its user in to app A: U's RFC 9207
    iss, its ID token, its verified email; a user unverified at U gets nowhere."""
    services = loopback_services
    settings = services.settings
    provider = make_provider(
        settings, fed_app, issuer=oneauth_upstream.issuer, client_id="pending", secret="pending"
    )
    registered = oneauth_upstream.register_client([callback_url(settings, fed_app, provider.id)])
    from oneauth.db import ops
    from oneauth.secretbox import SecretBox

    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, fed_app.names),
    ):
        assert registered.client_secret is not None
        provider = providers.update(
            conn,
            SecretBox.from_config(settings.master_key),
            fed_app.app_id,
            provider.id,
            secret=registered.client_secret,
            allow_http=True,
            client_id=registered.client_id,
        )
    sub_at_u = oneauth_upstream.add_user("ursula@u.example")
    started, browser = await begin(services, fed_app, provider.id)
    async with httpx.AsyncClient() as http:
        params = query(
            await oneauth_upstream.sign_in(http, started.authorize_url, "ursula@u.example")
        )
    assert params["iss"] == oneauth_upstream.issuer
    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.SignedIn), outcome
    assert outcome.user.email == "ursula@u.example"
    rows = await fetch(services, fed_app, "SELECT issuer, subject FROM user_identities")
    assert [(r["issuer"], r["subject"]) for r in rows] == [(oneauth_upstream.issuer, sub_at_u)]
    assert outcome.user.sub != sub_at_u  # A's user is A's own, not U's

    oneauth_upstream.add_user("unproven@u.example", verified=False)
    started, browser = await begin(services, fed_app, provider.id)
    async with httpx.AsyncClient() as http:
        params = query(
            await oneauth_upstream.sign_in(http, started.authorize_url, "unproven@u.example")
        )
    refused = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(refused, strategy.Refused)
    assert refused.reason == "email_unverified"
    assert (await counts(services, fed_app))["users"] == 1
