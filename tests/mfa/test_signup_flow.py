"""Issue 12: sign-up is a flow of the engine: with mfa=required no token before enrolment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from oneauth.apps.models import AppRecord

from .conftest import PASSWORD, claims_of, code_for, post, unique_email


async def test_signup_where_mfa_is_required_enrols_before_any_token(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], configure: Callable[..., Any]
) -> None:
    app = provision()
    other = provision()
    await configure(app, mfa="required")
    email = unique_email("signup")
    r = await post(client, app, "/v1/signup", {"email": email, "password": PASSWORD})
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["code"] == "mfa_enrollment_required"
    assert body["user"]["email"] == email
    assert "access_token" not in body
    flow_token = body["flow_token"]
    # The account exists (signing in says the same: enrol first) ...
    again = await post(client, app, "/v1/login", {"email": email, "password": PASSWORD})
    assert again.status_code == 403
    assert again.json()["code"] == "mfa_enrollment_required"
    # ... the flow token opens nothing at another app, nor the second-factor call ...
    assert (await post(client, other, "/v1/mfa/totp", {"flow_token": flow_token})).json()[
        "code"
    ] == "flow_expired"
    login_mfa = await post(
        client, app, "/v1/login/mfa", {"flow_token": flow_token, "factor": "totp", "code": "000000"}
    )
    assert login_mfa.status_code == 400
    # ... and enrolling with it completes the sign-up with both factors.
    started = await post(client, app, "/v1/mfa/totp", {"flow_token": flow_token})
    assert started.status_code == 201, started.text
    secret, factor_id = started.json()["secret"], started.json()["factor_id"]
    done = await post(
        client,
        app,
        "/v1/mfa/totp/confirm",
        {"factor_id": factor_id, "code": code_for(secret), "flow_token": flow_token},
    )
    assert done.status_code == 200, done.text
    claims = claims_of(done.json()["tokens"]["access_token"])
    assert "mfa" in claims["amr"]
    assert claims["acr"] == "urn:oneauth:acr:mfa"


async def test_signup_where_mfa_is_optional_answers_as_before(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    r = await post(client, app, "/v1/signup", {"email": unique_email(), "password": PASSWORD})
    assert r.status_code == 201
    claims = claims_of(r.json()["access_token"])
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == "urn:oneauth:acr:sfa"
