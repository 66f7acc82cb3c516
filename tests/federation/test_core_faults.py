"""What a lying or broken upstream gets: tampered, foreign or expired ID tokens,
``alg: none``, errors from the token endpoint, and an upstream that accepts the
connection and never answers (bounded, clear, no connection or transaction held).
Each refused, nothing created (issue 14)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from oneauth.apps.models import AppRecord
from oneauth.errors import UpstreamUnavailable
from oneauth.federation import upstream
from oneauth.flows import engine
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.strategies import upstream as strategy

from ._core import (
    FaultOP,
    Plan,
    Silent,
    begin,
    callback,
    counts,
    fetch,
    first_party_client,
    idle_in_transaction,
    make_provider,
    query,
)


@pytest.fixture(scope="module")
def fault_op() -> Iterator[FaultOP]:
    op = FaultOP().start()
    yield op
    op.stop()


@pytest.fixture
def fed_app(provision: Callable[..., AppRecord], settings: Settings) -> AppRecord:
    app = provision(name="Fault Shop")
    first_party_client(settings, app)
    return app


async def run(
    op: FaultOP, settings: Settings, services: Services, app: AppRecord, plan: Plan, **spec: Any
) -> Any:
    client_id, secret = op.client(plan)
    provider = make_provider(
        settings, app, issuer=op.issuer, client_id=client_id, secret=secret, **spec
    )
    started, browser = await begin(services, app, provider.id)
    params = query(await op.authorize(started.authorize_url))
    return await callback(services, app, provider.id, params, browser)


async def test_fault_op_happy_path_signs_in(
    fault_op: FaultOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    """The rig itself works: the refusals below are the checks, not a broken rig."""
    outcome = await run(fault_op, settings, services, fed_app, Plan())
    assert isinstance(outcome, strategy.SignedIn), outcome


BAD_TOKENS = {
    "tampered_payload": (Plan(token_mode="tamper"), "invalid_id_token"),
    "signed_by_another_key": (Plan(token_mode="other_key"), "invalid_id_token"),
    "alg_none": (Plan(token_mode="alg_none"), "invalid_id_token"),
    "other_audience": (Plan(id_claims={"aud": "someone-else"}), "invalid_id_token"),
    "several_audiences_no_azp": (
        Plan(id_claims={"aud": ["x", "{client}"]}),
        "invalid_id_token",
    ),
    "foreign_azp": (Plan(id_claims={"azp": "someone-else"}), "invalid_id_token"),
    "expired": (Plan(id_claims={"exp": int(time.time()) - 3600}), "invalid_id_token"),
    "issued_in_the_future": (Plan(id_claims={"iat": int(time.time()) + 3600}), "invalid_id_token"),
    "other_issuer": (Plan(id_claims={"iss": "https://evil.example"}), "issuer_mismatch"),
    "wrong_nonce": (Plan(nonce_override="not-the-nonce"), "nonce_mismatch"),
    "no_nonce": (Plan(drop_claims=("nonce",)), "nonce_mismatch"),
    "token_error": (Plan(token_mode="error"), "token_exchange_failed"),
    "token_not_json": (Plan(token_mode="not_json"), "token_exchange_failed"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_id_tokens_are_refused_and_create_nothing(
    fault_op: FaultOP, fed_app: AppRecord, settings: Settings, services: Services, case: str
) -> None:
    plan, reason = BAD_TOKENS[case]
    plan = Plan(**{**plan.__dict__, "sub": f"f-{case}"})
    before = await counts(services, fed_app)
    client_id, secret = fault_op.client(plan)
    if plan.id_claims.get("aud") == ["x", "{client}"]:
        plan.id_claims["aud"] = ["x", client_id]
    provider = make_provider(
        settings, fed_app, issuer=fault_op.issuer, client_id=client_id, secret=secret
    )
    started, browser = await begin(services, fed_app, provider.id)
    params = query(await fault_op.authorize(started.authorize_url))
    outcome = await callback(services, fed_app, provider.id, params, browser)
    assert isinstance(outcome, strategy.Refused), outcome
    assert outcome.reason == reason
    assert await counts(services, fed_app) == before
    audited = await fetch(
        services,
        fed_app,
        "SELECT details->>'reason' AS reason FROM audit_log WHERE event = 'federation.callback'",
    )
    assert [r["reason"] for r in audited] == [reason]


async def test_upstream_that_never_answers_discovery_is_bounded(
    fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    """Start at an upstream that accepts TCP and says nothing: a clear error within
    the bounds, no database transaction open while waiting, the socket closed."""
    silent = Silent()
    try:
        provider = make_provider(settings, fed_app, issuer=silent.url, client_id="c", secret="s")
        began = time.monotonic()
        task = asyncio.create_task(begin(services, fed_app, provider.id))
        await asyncio.sleep(1.0)
        assert silent.accepted >= 1  # it is waiting on the upstream now ...
        assert await idle_in_transaction(services) == 0  # ... holding no transaction
        with pytest.raises(UpstreamUnavailable) as raised:
            await task
        took = time.monotonic() - began
        assert took <= upstream.TOTAL + 1, took
        assert raised.value.status == 503
        assert raised.value.code == "upstream_unavailable"
        assert silent.open_connections() == 0  # the client hung up
        assert await counts(services, fed_app) == {
            "users": 0,
            "user_identities": 0,
            "sessions": 0,
            "federation_pending_links": 0,
        }
        assert (await fetch(services, fed_app, "SELECT count(*) AS n FROM auth_flows"))[0]["n"] == 0
    finally:
        silent.close()


async def test_token_endpoint_that_never_answers_is_bounded(
    fault_op: FaultOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    """The callback waits on a silent token endpoint: refused in bounded time, no
    transaction open meanwhile, nothing created."""
    silent = Silent()
    try:
        client_id, secret = fault_op.client(Plan())
        provider = make_provider(
            settings,
            fed_app,
            issuer=fault_op.issuer,
            client_id=client_id,
            secret=secret,
            auth_params={"token_endpoint": f"{silent.url}/token"},
        )
        started, browser = await begin(services, fed_app, provider.id)
        params = query(await fault_op.authorize(started.authorize_url))
        before = await counts(services, fed_app)
        began = time.monotonic()
        task = asyncio.create_task(callback(services, fed_app, provider.id, params, browser))
        for _ in range(100):  # until the callback is waiting on the token endpoint
            if silent.accepted >= 1:
                break
            await asyncio.sleep(0.05)
        assert silent.accepted >= 1
        assert await idle_in_transaction(services) == 0  # no transaction held while it waits
        outcome = await task
        took = time.monotonic() - began
        assert isinstance(outcome, strategy.Refused)
        assert outcome.reason == "upstream_unavailable"
        assert "not answering" in outcome.message
        # Bounded by the step's total (plus the callback's own work, slow on a loaded machine).
        assert took <= upstream.TOTAL + 5, took
        assert silent.open_connections() == 0
        assert await counts(services, fed_app) == before
    finally:
        silent.close()


async def test_jwks_is_cached_and_refetched_at_most_once_for_an_unknown_kid(
    fault_op: FaultOP, fed_app: AppRecord, settings: Settings, services: Services
) -> None:
    """Two sign-ins fetch the keys once; a token under an unknown kid refetches once
    (a key rollover) and is refused; another within JWKS_REFETCH_MIN refetches
    nothing (a forged kid cannot make us hammer the upstream)."""
    upstream.clear_caches()
    calls = fault_op.jwks_calls
    for _ in range(2):
        outcome = await run(fault_op, settings, services, fed_app, Plan())
        assert isinstance(outcome, strategy.SignedIn)
    assert fault_op.jwks_calls == calls + 1
    # The cached copy is older than JWKS_REFETCH_MIN now (as if time had passed).
    upstream._jwks_cache[f"{fault_op.issuer}/jwks"].fetched -= upstream.JWKS_REFETCH_MIN + 1
    for _ in range(2):
        outcome = await run(fault_op, settings, services, fed_app, Plan(kid="rolled-over"))
        assert isinstance(outcome, strategy.Refused)
        assert outcome.reason == "invalid_id_token"
    assert fault_op.jwks_calls == calls + 2


@pytest.mark.parametrize("trust_amr", [False, True])
async def test_upstream_mfa_counts_only_when_the_provider_trusts_its_amr(
    fault_op: FaultOP,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
    trust_amr: bool,
) -> None:
    """M1: an app that requires MFA; the upstream says its user used two factors.
    By default that is one factor here ("fed"): the flow waits for an enrolment and
    issues no session. With trust_amr the upstream's RFC 8176 values count (acr mfa);
    values outside RFC 8176 never do."""
    app = provision(name="MFA Shop", app_settings={"mfa": "required"})
    first_party_client(settings, app)
    plan = Plan(id_claims={"amr": ["pwd", "otp", "mfa", "made-up"]})
    outcome = await run(fault_op, settings, services, app, plan, trust_amr=trust_amr)
    assert isinstance(outcome, strategy.SignedIn), outcome
    if trust_amr:
        assert outcome.amr == ["fed", "pwd", "otp", "mfa"]
        assert isinstance(outcome.result, engine.Issued)
        assert outcome.flow.acr == engine.ACR_MFA
    else:
        assert outcome.amr == ["fed"]
        assert isinstance(outcome.result, engine.Pending)
        assert outcome.result.flow.kind == "enrol"
        assert outcome.flow.acr == engine.ACR_SFA
        assert (await counts(services, app))["sessions"] == 0


async def test_one_apps_endpoint_override_never_reaches_another_app(
    fault_op: FaultOP,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    """B1: the discovery cache is shared (a public document), a provider's
    endpoint overrides are not. App A points its token endpoint elsewhere; app B,
    same upstream, fetched after A filled the cache, still uses the upstream's."""
    upstream.clear_caches()
    app_a, app_b = provision(name="Override A"), provision(name="Override B")
    for app in (app_a, app_b):
        first_party_client(settings, app)
    elsewhere = {"token_endpoint": f"{fault_op.issuer}/not-the-token-endpoint"}
    at_a = await run(fault_op, settings, services, app_a, Plan(), auth_params=elsewhere)
    assert isinstance(at_a, strategy.Refused)
    assert at_a.reason == "upstream_unavailable"  # a 404 where A's token endpoint is
    at_b = await run(fault_op, settings, services, app_b, Plan())
    assert isinstance(at_b, strategy.SignedIn), at_b
