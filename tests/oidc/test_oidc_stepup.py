"""Issue 12: acr_values and max_age on the authorization request force a step-up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from oneauth.settings import Settings

from ._support import authorize_params, exchange, jwt_claims, pkce_pair, query, sign_in
from .conftest import Provider
from .test_oidc_authorize import assert_redirect_error

MakeProvider = Callable[..., Awaitable[Provider]]
MFA = "urn:oneauth:acr:mfa"
SFA = "urn:oneauth:acr:sfa"


async def authorize(browser: httpx.AsyncClient, provider: Provider, **extra: str) -> httpx.Response:
    _, challenge = pkce_pair()
    params = authorize_params(provider.client_id, challenge, **extra)
    return await browser.get(f"/apps/{provider.app_id}/oauth/authorize", params=params)


async def test_acr_mfa_with_prompt_none_is_interaction_required_for_a_one_factor_session(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    provider = await make_provider()
    issuer = settings.issuer_for(provider.app_id)
    # Nobody signed in: login_required, as for any prompt=none.
    nobody = await authorize(browser, provider, prompt="none", acr_values=MFA)
    assert_redirect_error(nobody, "login_required", issuer)
    first = await sign_in(browser, provider.app_id, provider.client_id, provider.email)
    assert "code" in first.result
    # Signed in with a password only: the client asked for MFA, the user must act.
    stepped = await authorize(browser, provider, prompt="none", acr_values=MFA)
    assert_redirect_error(stepped, "interaction_required", issuer)
    # Without prompt=none no code either: the browser is shown a page, not sent back.
    page = await authorize(browser, provider, acr_values=MFA)
    assert page.status_code in (200, 403)
    assert "location" not in page.headers
    # The one-factor class is acceptable when listed (in any order), and so is no acr.
    for acr_values in (f"{MFA} {SFA}", SFA, "urn:example:unknown"):
        ok = await authorize(browser, provider, prompt="none", acr_values=acr_values)
        assert ok.status_code == 302
        assert "code" in query(ok.headers["location"]), acr_values


async def test_max_age_zero_with_prompt_none_is_login_required(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    provider = await make_provider()
    await sign_in(browser, provider.app_id, provider.client_id, provider.email)
    fresh = await authorize(browser, provider, prompt="none", max_age="3600")
    assert "code" in query(fresh.headers["location"])
    stale = await authorize(browser, provider, prompt="none", max_age="0")
    assert_redirect_error(stale, "login_required", settings.issuer_for(provider.app_id))


async def test_bad_acr_values_and_prompts(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    provider = await make_provider()
    issuer = settings.issuer_for(provider.app_id)
    many = " ".join(f"urn:x:{i}" for i in range(11))
    assert_redirect_error(
        await authorize(browser, provider, acr_values=many), "invalid_request", issuer
    )
    long = "urn:" + "x" * 300
    assert_redirect_error(
        await authorize(browser, provider, acr_values=long), "invalid_request", issuer
    )
    # prompt=create cannot be combined with none (nothing could be shown).
    both = await authorize(browser, provider, prompt="none create")
    assert_redirect_error(both, "invalid_request", issuer)
    unknown = await authorize(browser, provider, prompt="signup")
    assert_redirect_error(unknown, "invalid_request", issuer)


async def test_id_token_carries_the_achieved_acr(
    browser: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = await make_provider()
    flow = await sign_in(browser, provider.app_id, provider.client_id, provider.email)
    tokens = await exchange(browser, provider.app_id, provider.client_id, flow.code, flow.verifier)
    assert tokens.status_code == 200, tokens.text
    _, id_claims = jwt_claims(tokens.json()["id_token"])
    _, at_claims = jwt_claims(tokens.json()["access_token"])
    # A password sign-in: the one-factor class, whatever acr_values asked for.
    assert id_claims["acr"] == at_claims["acr"] == SFA
    assert id_claims["amr"] == ["pwd"]
