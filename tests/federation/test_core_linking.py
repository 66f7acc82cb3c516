"""The linking rules (issue 14, SECURITY.md F1, B5, P7): an existing local account is
never linked without proof of it and a confirmation; an unverified upstream email
never links or creates; ``email_verified`` counts only from the response that gave
the email; a federated sign-in proving a squatted, unverified signup's mailbox ends
what the squatter set up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from oidc._support import PASSWORD, signup
from oneauth.apps.models import AppRecord
from oneauth.errors import FlowExpired, InvalidCredentials
from oneauth.federation import providers, upstream
from oneauth.flows import engine
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.strategies import upstream as strategy

from ._core import (
    META,
    Browser,
    FaultOP,
    Plan,
    begin,
    callback,
    counts,
    fetch,
    finisher,
    first_party_client,
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
    app = provision(name="Linking Shop")
    first_party_client(settings, app)
    return app


async def local_user(
    client: httpx.AsyncClient, services: Services, app: AppRecord, email: str, *, verified: bool
) -> str:
    sub = await signup(client, app.app_id, email)
    if verified:
        async with services.router.enter(app) as conn:
            await conn.execute("UPDATE users SET email_verified = true WHERE id = $1::uuid", sub)
    return sub


async def through(
    op: FaultOP,
    settings: Settings,
    services: Services,
    app: AppRecord,
    plan: Plan,
    provider: providers.Provider | None = None,
    **spec: Any,
) -> tuple[Any, providers.Provider, Browser]:
    if provider is None:
        client_id, secret = op.client(plan)
        provider = make_provider(
            settings, app, issuer=op.issuer, client_id=client_id, secret=secret, **spec
        )
    started, browser = await begin(services, app, provider.id)
    params = query(await op.authorize(started.authorize_url))
    return await callback(services, app, provider.id, params, browser), provider, browser


async def confirm(
    services: Services,
    app: AppRecord,
    link: strategy.LinkRequired,
    browser: Browser,
    email: str,
    password: str = PASSWORD,
    *,
    confirmed: bool = True,
) -> Any:
    return await strategy.confirm_link(
        services,
        app,
        flow_token=link.flow_token,
        binding=browser.binding,
        factor="password",
        payload={"email": email, "password": password},
        confirm=confirmed,
        meta=META,
        finish=finisher(services, app),
    )


async def identities_of(services: Services, app: AppRecord) -> list[str]:
    rows = await fetch(services, app, "SELECT user_id::text AS u FROM user_identities")
    return [r["u"] for r in rows]


async def test_existing_account_is_linked_only_after_proof_and_confirmation(
    fault_op: FaultOP,
    fed_app: AppRecord,
    settings: Settings,
    services: Services,
    client: httpx.AsyncClient,
) -> None:
    email = "owner@linking.example"
    sub = await local_user(client, services, fed_app, email, verified=True)
    plan = Plan(id_claims={"email": email, "email_verified": True})
    before = await counts(services, fed_app)

    outcome, provider, browser = await through(fault_op, settings, services, fed_app, plan)
    assert isinstance(outcome, strategy.LinkRequired), outcome
    assert outcome.email_masked == "o***@linking.example"
    assert await identities_of(services, fed_app) == []  # never silently
    assert await counts(services, fed_app) == before | {"federation_pending_links": 1}

    # Without proof: a wrong password links nothing.
    with pytest.raises(InvalidCredentials):
        await confirm(services, fed_app, outcome, browser, email, "wrong-password-123")
    assert await identities_of(services, fed_app) == []
    # Proof without the confirmation: nothing either.
    refused = await confirm(services, fed_app, outcome, browser, email, confirmed=False)
    assert isinstance(refused, strategy.Refused)
    assert refused.reason == "link_not_confirmed"
    assert await identities_of(services, fed_app) == []
    # Another browser cannot continue this flow.
    with pytest.raises(FlowExpired):
        await confirm(services, fed_app, outcome, Browser(), email)

    linked = await confirm(services, fed_app, outcome, browser, email)
    assert isinstance(linked, strategy.SignedIn), linked
    assert linked.user.sub == sub
    assert linked.amr == ["pwd"]  # the proof's factor; the upstream adds no MFA
    assert isinstance(linked.result, engine.Issued)
    assert await identities_of(services, fed_app) == [sub]
    audit = await fetch(
        services,
        fed_app,
        "SELECT event, details->>'how' AS how FROM audit_log"
        " WHERE event IN ('federation.link', 'federation.link_required') ORDER BY id",
    )
    assert [(r["event"], r["how"]) for r in audit] == [
        ("federation.link_required", None),
        ("federation.link", "proof"),
    ]
    mail = await fetch(
        services, fed_app, "SELECT recipient FROM outbox WHERE kind = 'federation_linked'"
    )
    assert [r["recipient"] for r in mail] == [email]
    # The pending link is used up: the same flow token cannot link again.
    with pytest.raises(FlowExpired):
        await confirm(services, fed_app, outcome, browser, email)

    # From now on the upstream signs in directly.
    again, _, _ = await through(fault_op, settings, services, fed_app, plan, provider)
    assert isinstance(again, strategy.SignedIn)
    assert again.user.sub == sub


async def test_proof_of_another_account_links_nothing(
    fault_op: FaultOP,
    fed_app: AppRecord,
    settings: Settings,
    services: Services,
    client: httpx.AsyncClient,
) -> None:
    target = "victim@linking.example"
    await local_user(client, services, fed_app, target, verified=True)
    await local_user(client, services, fed_app, "mine@linking.example", verified=True)
    plan = Plan(id_claims={"email": target, "email_verified": True})
    outcome, _, browser = await through(fault_op, settings, services, fed_app, plan)
    assert isinstance(outcome, strategy.LinkRequired)
    wrong = await confirm(services, fed_app, outcome, browser, "mine@linking.example")
    assert isinstance(wrong, strategy.Refused)
    assert wrong.reason == "wrong_account"
    assert await identities_of(services, fed_app) == []


async def test_unverified_upstream_email_never_links_or_creates(
    fault_op: FaultOP,
    fed_app: AppRecord,
    settings: Settings,
    services: Services,
    client: httpx.AsyncClient,
) -> None:
    email = "taken@linking.example"
    await local_user(client, services, fed_app, email, verified=True)
    before = await counts(services, fed_app)
    for claimed in (email, "fresh@linking.example"):
        for flag in (False, "false", None):
            claims: dict[str, Any] = {"email": claimed, "email_verified": flag}
            plan = Plan(
                id_claims=claims, drop_claims=() if flag is not None else ("email_verified",)
            )
            outcome, _, _ = await through(fault_op, settings, services, fed_app, plan)
            assert isinstance(outcome, strategy.Refused), (claimed, flag)
            assert outcome.reason == "email_unverified"
    assert await counts(services, fed_app) == before


async def test_provider_that_does_not_trust_email_verified_never_links(
    fault_op: FaultOP,
    fed_app: AppRecord,
    settings: Settings,
    services: Services,
    client: httpx.AsyncClient,
) -> None:
    email = "trusted-not@linking.example"
    await local_user(client, services, fed_app, email, verified=True)
    plan = Plan(id_claims={"email": email, "email_verified": True})
    outcome, _, _ = await through(
        fault_op, settings, services, fed_app, plan, trust_email_verified=False
    )
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "email_unverified"
    assert await identities_of(services, fed_app) == []


async def test_email_verified_from_another_response_does_not_count(
    fault_op: FaultOP,
    fed_app: AppRecord,
    settings: Settings,
    services: Services,
    client: httpx.AsyncClient,
) -> None:
    """The Keycloak CVE class: the ID token says email_verified (about no email, or
    another one); the email comes from UserInfo, which does not say it is verified."""
    email = "split@linking.example"
    await local_user(client, services, fed_app, email, verified=True)
    before = await counts(services, fed_app)
    split = Plan(id_claims={"email_verified": True}, drop_claims=("email",))
    split.userinfo = {"sub": split.sub, "email": email}
    outcome, _, _ = await through(fault_op, settings, services, fed_app, split)
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "email_unverified"
    # The reverse: an unverified email in the ID token, "verified" only in UserInfo.
    reverse = Plan(id_claims={"email": email, "email_verified": False})
    reverse.userinfo = {"sub": reverse.sub, "email": email, "email_verified": True}
    outcome, _, _ = await through(fault_op, settings, services, fed_app, reverse)
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "email_unverified"
    assert await counts(services, fed_app) == before

    # Both from UserInfo (one response): that counts, and asks for proof as usual.
    whole = Plan(drop_claims=("email", "email_verified"))
    whole.userinfo = {"sub": whole.sub, "email": email, "email_verified": True}
    outcome, _, _ = await through(fault_op, settings, services, fed_app, whole)
    assert isinstance(outcome, strategy.LinkRequired)
    # UserInfo about another subject is refused outright (OIDC Core 5.3.4).
    other = Plan(drop_claims=("email",))
    other.userinfo = {"sub": "someone-else", "email": email, "email_verified": True}
    outcome, _, _ = await through(fault_op, settings, services, fed_app, other)
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "userinfo_mismatch"


async def test_federated_proof_of_a_squatted_signup_ends_the_squatter(
    fault_op: FaultOP,
    fed_app: AppRecord,
    settings: Settings,
    services: Services,
    client: httpx.AsyncClient,
) -> None:
    """P7: someone signed up with the owner's address (a password of their own, a
    session); the owner signs in through an upstream that verified the address.
    The first proof of the mailbox clears that password and ends those sessions;
    the account is the owner's now, linked, audited and mailed."""
    email = "owner-late@linking.example"
    response = await client.post(
        f"/apps/{fed_app.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    sub = response.json()["user"]["id"]
    client.cookies.clear()
    squatter_sessions = await fetch(
        services,
        fed_app,
        "SELECT count(*) AS n FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL",
        sub,
    )
    assert squatter_sessions[0]["n"] >= 1

    plan = Plan(id_claims={"email": email, "email_verified": True})
    outcome, provider, _ = await through(fault_op, settings, services, fed_app, plan)
    assert isinstance(outcome, strategy.SignedIn), outcome
    assert outcome.user.sub == sub
    rows = await fetch(
        services,
        fed_app,
        "SELECT password_hash IS NULL AS cleared, email_verified FROM users WHERE id = $1::uuid",
        sub,
    )
    assert rows[0]["cleared"]
    assert rows[0]["email_verified"]
    alive = await fetch(
        services,
        fed_app,
        "SELECT count(*) AS n FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL",
        sub,
    )
    assert alive[0]["n"] == 1  # only the session this sign-in issued
    assert await identities_of(services, fed_app) == [sub]
    proof = await fetch(
        services,
        fed_app,
        "SELECT details->>'method' AS method FROM audit_log WHERE event = 'email.first_proof'",
    )
    assert [r["method"] for r in proof] == [strategy.factor_name(provider.id)]
    # The squatter's password no longer signs in.
    login = await client.post(
        f"/apps/{fed_app.app_id}/v1/login", json={"email": email, "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_policy_never_and_no_jit_refuse(
    fault_op: FaultOP,
    fed_app: AppRecord,
    settings: Settings,
    services: Services,
    client: httpx.AsyncClient,
) -> None:
    email = "never@linking.example"
    await local_user(client, services, fed_app, email, verified=True)
    plan = Plan(id_claims={"email": email, "email_verified": True})
    outcome, _, _ = await through(fault_op, settings, services, fed_app, plan, linking="never")
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "linking_disabled"
    before = await counts(services, fed_app)
    outcome, _, _ = await through(fault_op, settings, services, fed_app, Plan(), jit_signup=False)
    assert isinstance(outcome, strategy.Refused)
    assert outcome.reason == "signup_closed"
    assert await counts(services, fed_app) == before


def test_microsoft_identity_is_tid_and_oid_never_the_email() -> None:
    """nOAuth: Entra's email claim is mutable and unverified; the identity is
    tid+oid, and its email never counts as verified by default."""
    spec = providers.ProviderSpec(kind="microsoft", name="Microsoft", client_id="c").resolved()
    assert spec.trust_email_verified is False
    provider = providers.Provider(
        id="idp_" + "m" * 22,
        kind="microsoft",
        name="Microsoft",
        button_label=None,
        issuer=spec.issuer or "",
        client_id="c",
        client_secret_sealed="x",
        auth_method="client_secret_basic",
        auth_params={},
        scopes=spec.scopes or (),
        claim_mapping={},
        enabled=True,
        jit_signup=True,
        linking="confirm",
        trust_email_verified=False,
        trust_amr=False,
        keep_tokens=False,
    )
    tid, oid = "9188040d-6c67-4c5b-b112-36a304b66dad", "00000000-0000-0000-66f3-3332eca7ea81"
    claims = {
        "iss": f"https://login.microsoftonline.com/{tid}/v2.0",
        "sub": "pairwise-sub",
        "tid": tid,
        "oid": oid,
        "email": "ceo@victim.example",
        "email_verified": True,
    }
    found = upstream.profile(provider, claims, None)
    assert found.subject == f"{tid}:{oid}"
    assert found.email_verified is False
    changed = upstream.profile(provider, claims | {"email": "other@victim.example"}, None)
    assert changed.subject == found.subject
    with pytest.raises(upstream.UpstreamError):
        upstream.profile(provider, {k: v for k, v in claims.items() if k != "oid"}, None)
