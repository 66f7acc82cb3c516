"""/oauth/authorize, /oauth/logout and /consent read their parameters through their
declared models (issue 11), with the answers they gave when parsing by hand.

A value beyond its model's bound is answered by which parameter it is: while the
client or its redirect URI is in doubt, an error page (never a redirect, O1);
once both are good, an error redirect to the client (``state`` dropped when it
is the one too long). The same for a POSTed authorization request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from ._support import RP, authorize_params, form, pkce_pair, query, sign_in
from .conftest import Provider
from .test_oidc_authorize import assert_error_page

MakeProvider = Callable[..., Awaitable[Provider]]
LONG = "x" * 2049  # one past the 2048 of AuthorizeQuery / LogoutQuery


def _to_client(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(RP + "?"), location
    return query(location)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_authorize_answers_overlong_values_by_parameter(
    make_provider: MakeProvider, browser: httpx.AsyncClient, method: str
) -> None:
    p = await make_provider()
    _, challenge = pkce_pair()
    url = f"/apps/{p.app_id}/oauth/authorize"
    good = authorize_params(p.client_id, challenge)

    async def send(params: dict[str, str]) -> httpx.Response:
        if method == "GET":
            return await browser.get(url, params=params)
        return await browser.post(url, data=params)

    # Before the client and its redirect URI are known good: our page.
    assert_error_page(await send({**good, "client_id": LONG}), "invalid_client")
    assert_error_page(await send({**good, "redirect_uri": RP + LONG}), "invalid_redirect_uri")
    # After: back to the client, with the state unless the state is the culprit.
    result = _to_client(await send({**good, "state": LONG}))
    assert result["error"] == "invalid_request"
    assert "state" not in result
    assert "state is longer than 2048" in result["error_description"]
    result = _to_client(await send({**good, "nonce": LONG}))
    assert result["error"] == "invalid_request"
    assert result["state"] == good["state"]
    assert "nonce" in result["error_description"]
    result = _to_client(await send({**good, "request": "eyJ" + "a" * 20000}))
    assert result["error"] == "request_not_supported"
    result = _to_client(await send({**good, "response_mode": "fragment"}))
    assert result["error"] == "invalid_request"
    result = _to_client(await send({**good, "code_verifier": "v" * 43}))
    assert result["error"] == "invalid_request"
    # An unknown parameter is ignored (RFC 6749 section 3.1): the login page.
    page = await send({**good, "unknown_thing": "1"})
    assert page.status_code == 200
    assert "password" in form(page.text).fields


async def test_a_repeated_posted_parameter_is_an_error_page(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    _, challenge = pkce_pair()
    good = authorize_params(p.client_id, challenge)
    body = httpx.QueryParams([*good.items(), ("scope", "openid")])
    response = await browser.post(
        f"/apps/{p.app_id}/oauth/authorize",
        content=str(body),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_error_page(response, "invalid_request")


async def test_logout_refuses_overlong_values_on_its_page(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    p = await make_provider()
    url = f"/apps/{p.app_id}/oauth/logout"
    for params, says in (
        ({"state": LONG}, "The state parameter is too long."),
        ({"client_id": LONG}, "The client_id parameter is too long."),
        ({"post_logout_redirect_uri": LONG}, "The post_logout_redirect_uri parameter is too long"),
    ):
        for response in (
            await browser.get(url, params=params),
            await browser.post(url, data=params),
        ):
            assert response.status_code == 400, response.text
            assert "location" not in response.headers
            assert says in response.text
            assert "<code>invalid_logout_request</code>" in response.text


async def test_a_non_ascii_csrf_token_is_refused_not_a_500(
    make_provider: MakeProvider, browser: httpx.AsyncClient
) -> None:
    """The CSRF check compares with hmac.compare_digest, which raises on non-ASCII
    text: the form models only let printable ASCII through (a 500 before)."""
    p = await make_provider()
    flow = await sign_in(browser, p.app_id, p.client_id, p.email, consent=None)
    consent = form(flow.response.text)
    assert "decision" not in consent.fields
    data = {**consent.fields, "csrf": "\u00e9" * 10, "decision": "allow"}
    response = await browser.post(consent.action, data=data)
    assert response.status_code == 403, response.text
    assert "<code>csrf</code>" in response.text
    # An overlong decision is no "allow": the client hears access_denied.
    data = {**consent.fields, "decision": "allow" * 4}
    result = query((await browser.post(consent.action, data=data)).headers["location"])
    assert result["error"] == "access_denied"
