"""Issue 12: sign-up inside the authorization flow (prompt=create, the "Create account"
link) and the per-app ``self_signup`` switch, for /v1/signup and the hosted page alike."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable

import httpx
import pyotp
import pytest

from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._support import (
    PASSWORD,
    RP,
    authorize_params,
    exchange,
    form,
    forms,
    jwt_claims,
    pkce_pair,
    query,
    register,
    sign_in,
)
from .conftest import Provider
from .test_oidc_authorize import assert_page_headers

MakeProvider = Callable[..., Awaitable[Provider]]
NEW_PASSWORD = "copper-Meadow-kettle-77"


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")},
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_PUBLIC_URL": "https://auth.example.com",
    }
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", "apps", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


async def api_signup(http: httpx.AsyncClient, app_id: str, email: str) -> httpx.Response:
    return await http.post(
        f"/apps/{app_id}/v1/signup", json={"email": email, "password": NEW_PASSWORD}
    )


async def disable_signup(settings: Settings, http: httpx.AsyncClient, app: AppRecord) -> None:
    """``oneauth apps configure A --set self_signup=false``, then wait for the notice."""
    done = await asyncio.to_thread(
        cli, settings, "configure", app.app_id, "--set", "self_signup=false"
    )
    assert done.returncode == 0, done.stderr
    assert "self_signup: (default) -> false" in done.stdout
    for _ in range(200):
        probe = await api_signup(http, app.app_id, "probe@example.com")
        if probe.status_code == 403:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the service did not see self_signup=false")


async def authorize_page(
    browser: httpx.AsyncClient, provider: Provider, **extra: str
) -> tuple[httpx.Response, str]:
    verifier, challenge = pkce_pair()
    params = authorize_params(provider.client_id, challenge, **extra)
    response = await browser.get(f"/apps/{provider.app_id}/oauth/authorize", params=params)
    return response, verifier


def registration_form(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    page = form(response.text)
    assert page.action.endswith("/register")
    assert set(page.fields) >= {"csrf", "flow", "email", "password"}
    return dict(page.fields)


async def finish(browser: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    """Follow the pages' own redirects up to the one that leaves for the client."""
    for _ in range(4):
        if (
            response.status_code in (302, 303)
            and "/oauth/authorize/continue" in (response.headers["location"])
        ):
            response = await browser.get(response.headers["location"])
            continue
        if response.status_code == 200 and "decision" in response.text:
            data = dict(form(response.text).fields)
            response = await browser.post(
                form(response.text).action, data={**data, "decision": "allow"}
            )
            continue
        return response
    raise AssertionError("the flow did not end")


async def test_prompt_create_registers_and_continues_to_the_client(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    provider = await make_provider("someone@example.com")
    issuer = settings.issuer_for(provider.app_id)
    response, verifier = await authorize_page(browser, provider, prompt="create")
    assert_page_headers(response)
    data = registration_form(response)
    data.update(email="newcomer@example.com", password=NEW_PASSWORD)
    created = await browser.post(f"{issuer}/register", data=data)
    assert created.status_code == 303, created.text
    done = await finish(browser, created)
    assert done.status_code in (302, 303)
    assert done.headers["location"].startswith(RP + "?")
    result = query(done.headers["location"])
    assert result["state"] == "st-123"
    tokens = await exchange(browser, provider.app_id, provider.client_id, result["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    _, claims = jwt_claims(tokens.json()["id_token"])
    assert claims["email"] == "newcomer@example.com"
    assert claims["sub"] != provider.sub
    assert claims["amr"] == ["pwd"]
    # The new account signs in like any other (same service as /v1/signup).
    login = await browser.post(
        f"/apps/{provider.app_id}/v1/login",
        json={"email": "newcomer@example.com", "password": NEW_PASSWORD},
    )
    assert login.status_code == 200


async def test_login_page_links_to_registration_and_back(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    provider = await make_provider()
    response, _ = await authorize_page(browser, provider)
    assert response.status_code == 200
    assert "Create account" in response.text
    flow = form(response.text).fields["flow"]
    register_url = f"{settings.issuer_for(provider.app_id)}/register"
    page = await browser.get(register_url, params={"flow": flow})
    registration_form(page)
    # "Already have an account? Sign in" leads to the login page of the same request.
    back = [line for line in page.text.split('"') if "/oauth/authorize/continue" in line]
    assert back, page.text
    login_page = await browser.get(back[0].replace("&amp;", "&"))
    assert login_page.status_code == 200
    assert "password" in form(login_page.text).fields
    assert "Create account" in login_page.text
    # prompt=create in discovery (Initiating User Registration section 4.2).
    doc = await browser.get(f"/apps/{provider.app_id}/.well-known/openid-configuration")
    assert "create" in doc.json()["prompt_values_supported"]


async def test_taken_address_on_the_page(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    provider = await make_provider("taken@example.com")
    response, _ = await authorize_page(browser, provider, prompt="create")
    data = registration_form(response)
    data.update(email="taken@example.com", password=NEW_PASSWORD)
    again = await browser.post(f"{settings.issuer_for(provider.app_id)}/register", data=data)
    # As /v1/signup's 409 without require_verified_email (the documented price).
    assert again.status_code == 409
    assert "already exists" in again.text
    assert "set-cookie" not in again.headers or "oneauth_session_" not in again.headers.get(
        "set-cookie", ""
    )


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"email": "", "password": ""}, 400),
        ({"email": "not-an-address", "password": NEW_PASSWORD}, 422),
        ({"email": "weak@example.com", "password": "password"}, 422),
        ({"email": "long@example.com", "password": "x" * 2000}, 422),
    ],
)
async def test_bad_registration_input_is_a_page_not_a_5xx(
    browser: httpx.AsyncClient,
    make_provider: MakeProvider,
    settings: Settings,
    fields: dict[str, str],
    status: int,
) -> None:
    provider = await make_provider()
    response, _ = await authorize_page(browser, provider, prompt="create")
    data = {**registration_form(response), **fields}
    answer = await browser.post(f"{settings.issuer_for(provider.app_id)}/register", data=data)
    assert answer.status_code == status, answer.text
    assert 'role="alert"' in answer.text


async def test_registration_needs_the_csrf_token(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    provider = await make_provider()
    response, _ = await authorize_page(browser, provider, prompt="create")
    data = registration_form(response)
    data.update(email="csrf@example.com", password=NEW_PASSWORD, csrf="forged")
    refused = await browser.post(f"{settings.issuer_for(provider.app_id)}/register", data=data)
    assert refused.status_code == 403
    assert "<code>csrf</code>" in refused.text
    signed_up = await browser.post(
        f"/apps/{provider.app_id}/v1/login",
        json={"email": "csrf@example.com", "password": NEW_PASSWORD},
    )
    assert signed_up.status_code == 401  # no account was made


async def test_verification_required_answers_the_same_for_taken_and_new(
    browser: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    client: httpx.AsyncClient,
    services: Services,
) -> None:
    app = provision(app_settings={"require_verified_email": True})
    client_id, _ = register(settings, app)
    owner = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": "owner@example.com", "password": PASSWORD}
    )
    assert owner.status_code == 202
    provider = Provider(app, client_id, "owner@example.com", "")
    pages = []
    for email in ("owner@example.com", "fresh@example.com"):
        response, _ = await authorize_page(browser, provider, prompt="create")
        data = registration_form(response)
        data.update(email=email, password=NEW_PASSWORD)
        answer = await browser.post(f"{settings.issuer_for(app.app_id)}/register", data=data)
        assert answer.status_code == 200, answer.text
        assert "oneauth_session_" not in answer.headers.get("set-cookie", "")
        pages.append(answer.text.replace(email, "EMAIL"))
    assert "Check your email" in pages[0]
    assert _same_text(pages)
    async with services.router.app(app.app_id) as conn:
        kinds = [
            r["kind"] for r in await conn.fetch("SELECT kind FROM outbox ORDER BY created_at, id")
        ]
    # The owner of the taken address is told; the new one gets a verification link.
    assert kinds.count("signup_existing") == 1
    assert kinds.count("verify_email") == 2  # the owner's own signup, and fresh@


def _same_text(pages: list[str]) -> bool:
    """Equal but for attribute values (the sealed request in the links differs)."""

    def text(page: str) -> list[str]:
        return re.sub(r"<[^>]+>", " ", page).split()

    return text(pages[0]) == text(pages[1])


async def test_self_signup_false_refuses_api_and_page_and_leaves_b_alone(
    browser: httpx.AsyncClient,
    make_provider: MakeProvider,
    settings: Settings,
    client: httpx.AsyncClient,
) -> None:
    a = await make_provider("member@example.com")
    b = await make_provider("member@example.com")
    await disable_signup(settings, client, a.app)

    for email in ("member@example.com", "stranger@example.com", "not an address"):
        refused = await api_signup(client, a.app_id, email)
        assert refused.status_code == 403
        body = refused.json()
        assert body["code"] == "signup_disabled"
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await api_signup(client, b.app_id, "stranger@example.com")).status_code == 201

    # The hosted pages of A: no "Create account" link, and the page refuses.
    login_a, _ = await authorize_page(browser, a)
    assert login_a.status_code == 200
    assert "Create account" not in login_a.text
    create_a, _ = await authorize_page(browser, a, prompt="create")
    assert create_a.status_code == 403
    assert "<code>signup_disabled</code>" in create_a.text or "invitation" in create_a.text
    assert not [f for f in forms(create_a.text) if f.action.endswith("/register")]
    flow = form(login_a.text).fields["flow"]
    csrf = form(login_a.text).fields["csrf"]
    posted = await browser.post(
        f"{settings.issuer_for(a.app_id)}/register",
        data={"csrf": csrf, "flow": flow, "email": "sneaky@example.com", "password": NEW_PASSWORD},
    )
    assert posted.status_code == 403
    assert (
        await client.post(
            f"/apps/{a.app_id}/v1/login",
            json={"email": "sneaky@example.com", "password": NEW_PASSWORD},
        )
    ).status_code == 401
    # Signing in still works at A; B still offers registration.
    done = await sign_in(browser, a.app_id, a.client_id, a.email)
    assert "code" in done.result
    create_b, _ = await authorize_page(browser, b, prompt="create")
    registration_form(create_b)


async def test_a_registration_cookie_gives_nothing_at_b(
    browser: httpx.AsyncClient, make_provider: MakeProvider, settings: Settings
) -> None:
    a = await make_provider()
    b = await make_provider()
    response, _ = await authorize_page(browser, a, prompt="create")
    data = registration_form(response)
    data.update(email="only-a@example.com", password=NEW_PASSWORD)
    created = await browser.post(f"{settings.issuer_for(a.app_id)}/register", data=data)
    assert created.status_code == 303
    # B's authorize, same browser: B's login page (A's cookie is neither sent nor valid).
    at_b, _ = await authorize_page(browser, b, prompt="none")
    assert at_b.status_code == 302
    assert query(at_b.headers["location"])["error"] == "login_required"
    # The same cookie value presented to B by hand is unknown there too.
    cookie = browser.cookies.get(f"oneauth_session_{a.app_id}")
    assert cookie
    browser.cookies.set(f"oneauth_session_{b.app_id}", cookie)
    at_b, _ = await authorize_page(browser, b, prompt="none")
    assert query(at_b.headers["location"])["error"] == "login_required"


async def test_registration_where_mfa_is_required_enrols_before_any_session(
    browser: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision(app_settings={"mfa": "required"})
    client_id, _ = register(settings, app)
    provider = Provider(app, client_id, "", "")
    response, verifier = await authorize_page(browser, provider, prompt="create")
    data = registration_form(response)
    data.update(email="needs-mfa@example.com", password=NEW_PASSWORD)
    enrol = await browser.post(f"{settings.issuer_for(app.app_id)}/register", data=data)
    # Sign-up is a flow: the enrolment page comes before any session.
    assert enrol.status_code == 200, enrol.text
    assert "Set up two-step verification" in enrol.text
    assert "oneauth_session_" not in enrol.headers.get("set-cookie", "")
    async with httpx.AsyncClient(
        transport=browser._transport, base_url="http://testserver"
    ) as other:
        # Another browser (no flow cookie) is not signed in, and gets no code.
        silent, _ = await authorize_page(other, provider, prompt="none")
        assert query(silent.headers["location"])["error"] == "login_required"
    # The account exists: its sign-in asks for enrolment too (the engine's answer).
    login = await browser.post(
        f"/apps/{app.app_id}/v1/login",
        json={"email": "needs-mfa@example.com", "password": NEW_PASSWORD},
    )
    assert login.status_code == 403
    assert login.json()["code"] == "mfa_enrollment_required"
    # Enrolling on the page finishes the sign-up and the authorization request.
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', enrol.text)
    assert secret is not None
    page = next(f for f in forms(enrol.text) if "factor_id" in f.fields)
    code = pyotp.TOTP(secret.group(1).replace(" ", "")).now()
    codes = await browser.post(page.action, data={**page.fields, "code": code})
    assert codes.status_code == 200, codes.text
    assert "oneauth_session_" in codes.headers.get("set-cookie", "")
    next_url = re.search(r'href="([^"]*/oauth/authorize/continue[^"]*)"', codes.text)
    assert next_url is not None
    done = await finish(browser, await browser.get(next_url.group(1).replace("&amp;", "&")))
    result = query(done.headers["location"])
    tokens = await exchange(browser, app.app_id, client_id, result["code"], verifier)
    _, claims = jwt_claims(tokens.json()["id_token"])
    assert claims["acr"] == "urn:oneauth:acr:mfa"
    assert claims["email"] == "needs-mfa@example.com"
