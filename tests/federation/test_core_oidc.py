"""Federation against a real OpenID Provider we did not write (panva's oidc-provider):
sign-in, the keying of identities, and the protocol checks a real OP can exercise
(replayed state, wrong or missing ``iss``, an error response, a wrong nonce, another
browser's state), each refused with nothing created (issue 14, F1, B5)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from federation.rig.node_op import Account, UpstreamOP
from oneauth.apps.models import AppRecord
from oneauth.errors import UnknownProvider
from oneauth.federation import providers
from oneauth.flows import engine
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.strategies import upstream as strategy

from ._core import (
    META,
    Browser,
    begin,
    callback,
    callback_url,
    counts,
    fetch,
    first_party_client,
    make_provider,
    query,
)


def provider_at(
    settings: Settings, app: AppRecord, op: UpstreamOP, **spec: Any
) -> providers.Provider:
    """A provider of ``app`` at ``op``: created, registered upstream with its exact
    callback URL, then given the client id and secret the upstream issued."""
    from oneauth.db import ops
    from oneauth.secretbox import SecretBox

    provider = make_provider(
        settings, app, issuer=op.issuer, client_id="pending", secret="pending", **spec
    )
    client = op.register_client([callback_url(settings, app, provider.id)])
    assert client.client_secret
    box = SecretBox.from_config(settings.master_key)
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        return providers.update(
            conn,
            box,
            app.app_id,
            provider.id,
            secret=client.client_secret,
            allow_http=True,
            client_id=client.client_id,
        )


@pytest.fixture
def fed_app(provision: Callable[..., AppRecord], settings: Settings) -> AppRecord:
    app = provision(name="Federated Shop")
    first_party_client(settings, app)
    return app


async def at_upstream(op: UpstreamOP, authorize_url: str, account: Account) -> dict[str, str]:
    async with httpx.AsyncClient() as http:
        return query(await op.sign_in(http, authorize_url, account))


async def test_sign_in_at_a_real_op_creates_one_user_keyed_by_issuer_and_sub(
    upstream_op: UpstreamOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    provider = provider_at(settings, fed_app, upstream_op)
    account = Account.new("grace@upstream.example", name="Grace")
    started, browser = await begin(services, fed_app, provider.id)
    sent = query(started.authorize_url)
    assert sent["code_challenge_method"] == "S256"
    assert len(sent["code_challenge"]) == 43
    assert sent["redirect_uri"] == callback_url(settings, fed_app, provider.id)
    assert len(sent["state"]) >= 43
    assert len(sent["nonce"]) >= 43
    params = await at_upstream(upstream_op, started.authorize_url, account)
    assert params["iss"] == upstream_op.issuer

    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.SignedIn), outcome
    assert outcome.amr == ["fed"]  # one factor; the upstream's amr is not trusted
    assert outcome.flow.acr == engine.ACR_SFA
    issued = outcome.result
    assert isinstance(issued, engine.Issued)
    assert issued.tokens is not None
    assert outcome.user.email == "grace@upstream.example"
    assert outcome.user.email_verified
    assert outcome.user.password_hash is None
    rows = await fetch(
        services, fed_app, "SELECT user_id, provider_id, issuer, subject FROM user_identities"
    )
    assert [(r["provider_id"], r["issuer"], r["subject"]) for r in rows] == [
        (provider.id, upstream_op.issuer, account.sub)
    ]

    # Again, with a changed upstream email: the same user (keyed by issuer + sub).
    account.email = "grace.new@upstream.example"
    started, browser = await begin(services, fed_app, provider.id)
    params = await at_upstream(upstream_op, started.authorize_url, account)
    again = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(again, strategy.SignedIn)
    assert again.user.id == outcome.user.id
    assert (await counts(services, fed_app))["users"] == 1
    events = await fetch(
        services,
        fed_app,
        "SELECT event, outcome FROM audit_log WHERE event LIKE 'federation.%'"
        " OR event = 'user.signup' ORDER BY id",
    )
    names = [r["event"] for r in events]
    assert names.count("federation.login") == 2
    assert "user.signup" in names


async def test_replayed_state_is_refused_and_creates_nothing(
    upstream_op: UpstreamOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    provider = provider_at(settings, fed_app, upstream_op)
    started, browser = await begin(services, fed_app, provider.id)
    params = await at_upstream(upstream_op, started.authorize_url, Account.new())
    first = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(first, strategy.SignedIn)
    before = await counts(services, fed_app)
    replay = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(replay, strategy.Refused)
    assert replay.reason == "invalid_state"
    assert await counts(services, fed_app) == before


async def test_two_concurrent_callbacks_with_one_state_sign_in_once(
    upstream_op: UpstreamOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    provider = provider_at(settings, fed_app, upstream_op)
    started, browser = await begin(services, fed_app, provider.id)
    params = await at_upstream(upstream_op, started.authorize_url, Account.new())
    results = await asyncio.gather(
        *(callback(services, fed_app, provider.id, params, browser) for _ in range(2))
    )
    kinds = sorted(type(r).__name__ for r in results)
    assert kinds == ["Refused", "SignedIn"], results
    assert (await counts(services, fed_app))["users"] == 1


@pytest.mark.parametrize("tamper", ["wrong_iss", "missing_iss", "error_response", "no_code"])
async def test_callback_checks_refuse_and_create_nothing(
    upstream_op: UpstreamOP,
    fed_app: AppRecord,
    settings: Settings,
    services: Services,
    tamper: str,
) -> None:
    provider = provider_at(settings, fed_app, upstream_op)
    started, browser = await begin(services, fed_app, provider.id)
    params = await at_upstream(upstream_op, started.authorize_url, Account.new())
    if tamper == "wrong_iss":
        params["iss"] = "https://evil.example"  # RFC 9207 mix-up: another issuer's answer
    elif tamper == "missing_iss":
        del params["iss"]  # the OP advertises authorization_response_iss_parameter_supported
    elif tamper == "error_response":
        params = {"error": "access_denied", "state": params["state"], "iss": params["iss"]}
    else:
        del params["code"]
    before = await counts(services, fed_app)
    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.Refused)
    expected = {"wrong_iss": "issuer_mismatch", "missing_iss": "issuer_mismatch"}
    assert outcome.reason == expected.get(tamper, "upstream_error")
    assert await counts(services, fed_app) == before
    denied = await fetch(
        services,
        fed_app,
        "SELECT details->>'reason' AS reason FROM audit_log"
        " WHERE event = 'federation.callback' AND outcome = 'denied'",
    )
    assert [r["reason"] for r in denied] == [outcome.reason]
    # The state died with the refusal: the genuine answer no longer works either.
    retry = await callback(services, fed_app, provider.id, params | {"iss": "x"}, browser)
    assert isinstance(retry, strategy.Refused)
    assert retry.reason == "invalid_state"


async def test_wrong_nonce_is_refused(
    upstream_op: UpstreamOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    """The browser (or an attacker) sends the upstream another nonce than ours: the
    real OP signs an ID token with that nonce, which this request did not make."""
    provider = provider_at(settings, fed_app, upstream_op)
    started, browser = await begin(services, fed_app, provider.id)
    sent = query(started.authorize_url)
    forged = sent | {"nonce": "attacker-chosen-nonce-value"}
    url = f"{upstream_op.authorization_endpoint}?{urlencode(forged)}"
    params = await at_upstream(upstream_op, url, Account.new())
    before = await counts(services, fed_app)
    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "nonce_mismatch"
    assert await counts(services, fed_app) == before


async def test_state_from_another_browser_is_refused(
    upstream_op: UpstreamOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    """Login CSRF: the attacker's callback URL opened in the victim's browser."""
    provider = provider_at(settings, fed_app, upstream_op)
    started, _attacker = await begin(services, fed_app, provider.id)
    params = await at_upstream(upstream_op, started.authorize_url, Account.new())
    before = await counts(services, fed_app)
    for browser in (Browser(), None):
        outcome = await callback(services, fed_app, provider.id, params, browser)
        assert isinstance(outcome, strategy.Refused)
        assert outcome.reason == "invalid_state"
    assert await counts(services, fed_app) == before


async def test_same_upstream_for_two_apps_gives_two_unrelated_users(
    upstream_op: UpstreamOP,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    """B5: apps A and B each register their own client at one upstream; one upstream
    account signs in to both as two users who share nothing; A's state and A's
    provider id mean nothing at B."""
    app_a, app_b = provision(name="Shop A"), provision(name="Shop B")
    for app in (app_a, app_b):
        first_party_client(settings, app)
    pa, pb = provider_at(settings, app_a, upstream_op), provider_at(settings, app_b, upstream_op)
    assert pa.client_id != pb.client_id
    account = Account.new("same.person@upstream.example")

    users = []
    for app, provider in ((app_a, pa), (app_b, pb)):
        started, browser = await begin(services, app, provider.id)
        params = await at_upstream(upstream_op, started.authorize_url, account)
        outcome = await callback(services, app, provider.id, params, browser)
        assert isinstance(outcome, strategy.SignedIn)
        users.append(outcome.user)
    assert users[0].id != users[1].id
    for app in (app_a, app_b):
        assert (await counts(services, app))["user_identities"] == 1

    # A's state (and A's browser) at B, with B's provider: no such request at B.
    started, browser = await begin(services, app_a, pa.id)
    params = await at_upstream(upstream_op, started.authorize_url, account)
    at_b = await callback(services, app_b, pb.id, params, browser)
    assert isinstance(at_b, strategy.Refused)
    assert at_b.reason == "invalid_state"
    # ... and still nothing at B with A's provider id in the URL.
    at_b = await callback(services, app_b, pa.id, params, browser)
    assert isinstance(at_b, strategy.Refused)
    assert at_b.reason == "unknown_provider"
    # A's provider id is unknown when starting at B.
    with pytest.raises(UnknownProvider):
        await begin(services, app_b, pa.id)
    # A's request is untouched by the attempts at B: it still completes at A.
    at_a = await callback(services, app_a, pa.id, params, browser)
    assert isinstance(at_a, strategy.SignedIn)
    assert at_a.user.id == users[0].id


async def test_disabled_or_unknown_provider_refuses_to_start(
    upstream_op: UpstreamOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    provider = provider_at(settings, fed_app, upstream_op, enabled=False)
    for provider_id in (provider.id, "idp_" + "x" * 22, "not-an-id"):
        with pytest.raises(UnknownProvider):
            await begin(services, fed_app, provider_id)
    assert META.request_id  # (the audit meta the helpers use)


async def test_private_key_jwt_client_authentication_at_a_real_op(
    upstream_op: UpstreamOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    """private_key_jwt (RFC 7523): the sealed "secret" is the app's RSA key; the real
    OP verifies our client assertion against the public key it registered."""
    from jwcrypto import jwk

    from oneauth.db import ops
    from oneauth.secretbox import SecretBox

    key = jwk.JWK.generate(kty="RSA", size=2048, kid="app-key-1")
    pem = key.export_to_pem(private_key=True, password=None).decode()
    provider = make_provider(
        settings,
        fed_app,
        issuer=upstream_op.issuer,
        client_id="pending",
        secret=pem,
        auth_method="private_key_jwt",
        auth_params={"key_id": "app-key-1"},
    )
    public = key.export_public(as_dict=True) | {"alg": "RS256", "use": "sig"}
    client = upstream_op.register_client(
        [callback_url(settings, fed_app, provider.id)],
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public]},
        token_endpoint_auth_signing_alg="RS256",
    )
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, fed_app.names),
    ):
        providers.update(
            conn,
            SecretBox.from_config(settings.master_key),
            fed_app.app_id,
            provider.id,
            allow_http=True,
            client_id=client.client_id,
        )
    started, browser = await begin(services, fed_app, provider.id)
    params = await at_upstream(upstream_op, started.authorize_url, Account.new())
    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.SignedIn), outcome
