"""Issue 12: the account Security page signs in through the second factor, and removing a
factor needs a recent sign-in with it (the API's rule)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from oidc._support import forms
from oneauth.apps.models import AppRecord
from oneauth.services import Services

from .conftest import PASSWORD, code_for, forget_last_step, mfa_login, post, user_with_totp
from .test_hosted import _form_with


async def _sign_in_to_account(
    browser: httpx.AsyncClient, app: AppRecord, email: str, secret: str, response: httpx.Response
) -> httpx.Response:
    """From a redirect to the hosted sign-in: password, TOTP code, back to /account."""
    for _ in range(8):
        if response.status_code in (302, 303):
            response = await browser.get(response.headers["location"])
            continue
        assert response.status_code == 200, response.text
        if [f for f in forms(response.text) if "password" in f.fields]:
            login = _form_with(response.text, "password")
            response = await browser.post(
                login.action, data={**login.fields, "email": email, "password": PASSWORD}
            )
        elif [f for f in forms(response.text) if f.fields.get("factor") == "totp"]:
            totp = _form_with(response.text, "factor", "totp")
            response = await browser.post(
                totp.action, data={**totp.fields, "code": code_for(secret)}
            )
        else:
            return response
    raise AssertionError("did not reach the account page")


async def test_account_sign_in_asks_for_the_factor_and_then_removal_works(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, secret, factor_id, _ = await user_with_totp(client, services, app)
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        page = await _sign_in_to_account(
            browser, app, email, secret, await browser.get(f"/apps/{app.app_id}/account")
        )
        assert "Security" in page.text
        assert "Authenticator app" in page.text
        assert "pwd, otp, mfa" in page.text  # this browser's sign-in used both factors
        remove = next(f for f in forms(page.text) if f.action.endswith(f"{factor_id}/remove"))
        removed = await browser.post(remove.action, data=remove.fields)
        assert removed.status_code == 303
        assert removed.headers["location"].endswith("done=factor_removed")
    # The API sees the same: no factor left, so sign-in asks for none.
    await forget_last_step(services, app)
    login = await post(client, app, "/v1/login", {"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text


async def test_a_stale_mfa_session_signs_in_again_with_the_factor_before_removal(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    email, secret, factor_id, _ = await user_with_totp(client, services, app)
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        page = await _sign_in_to_account(
            browser, app, email, secret, await browser.get(f"/apps/{app.app_id}/account")
        )
        async with services.router.app(app.app_id) as conn:
            await conn.execute(
                "UPDATE browser_sessions SET auth_time = now() - interval '1 hour'"
                " WHERE revoked_at IS NULL"
            )
        remove = next(f for f in forms(page.text) if f.action.endswith(f"{factor_id}/remove"))
        stale = await browser.post(remove.action, data=remove.fields)
        assert stale.status_code == 303
        assert "/oauth/authorize/continue" in stale.headers["location"]
        await forget_last_step(services, app)
        back = await _sign_in_to_account(browser, app, email, secret, stale)
        assert "Security" in back.text
        # Nothing was removed by the refused attempt; now it is allowed.
        remove = next(f for f in forms(back.text) if f.action.endswith(f"{factor_id}/remove"))
        removed = await browser.post(remove.action, data=remove.fields)
        assert removed.headers["location"].endswith("done=factor_removed")
    tokens = await mfa_login_or_plain(client, services, app, email, secret)
    listed = await client.get(f"/apps/{app.app_id}/v1/mfa", headers=tokens)
    assert listed.json()["factors"] == []


async def mfa_login_or_plain(
    client: httpx.AsyncClient, services: Services, app: AppRecord, email: str, secret: str
) -> dict[str, str]:
    await forget_last_step(services, app)
    r = await post(client, app, "/v1/login", {"email": email, "password": PASSWORD})
    if r.status_code == 403:
        body = await mfa_login(client, app, email, secret)
        return {"authorization": f"Bearer {body['access_token']}"}
    return {"authorization": f"Bearer {r.json()['access_token']}"}
