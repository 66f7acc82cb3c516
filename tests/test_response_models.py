"""Every JSON answer in ``/openapi.json`` is what the live route sends (issue 11).

schemathesis (``test_schemathesis.py``) fuzzes each operation, but generated
input rarely gets past a grant or a mail code, so most success bodies would go
unchecked there. Here one scripted walk through the API reaches every JSON
success status the document declares (a refresh, a code exchange, a mailed
code redeemed, a third-party token's /v1/me, ...) and validates each body
against the schema the document gives for that route, status and media type.
A JSON route added to the document without a step here fails the coverage
assertion, so the document and the wire cannot drift unnoticed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx
import jsonschema
import msgspec
import pyotp
import pytest
from starlette.applications import Starlette

from admin.walk_rest import walk_admin_rest
from apiclient import PASSWORD, confidential_client
from oidc._support import RP, authorize_params, exchange, form, pkce_pair, register, sign_in
from oidc.test_oidc_passkeys import ORIGIN, passkey_box
from oneauth.apps.models import AppRecord
from oneauth.http.openapi import document, schema_components
from oneauth.mail.backends import MemoryBackend
from oneauth.orgs import domains
from oneauth.orgs import service as orgs
from oneauth.orgs.actor import OPERATOR
from oneauth.services import Services
from oneauth.settings import Settings
from platformwalk import walk_platform
from recovery.conftest import code_in, text_of
from softauthn import SoftAuthenticator

JSON_TYPES = ("application/json", "application/jwk-set+json")


def json_answers(doc: dict[str, Any]) -> set[tuple[str, str, int]]:
    """(method, path, status) of every 2xx answer the document gives a JSON body."""
    found = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status.startswith("2") and set(answer.get("content", {})) & set(JSON_TYPES):
                    found.add((method.upper(), path, int(status)))
    return found


class Contract:
    """Checks live answers against one document and remembers which it saw."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, method: str, path: str, response: httpx.Response) -> None:
        answers = self.doc["paths"][path][method.lower()]["responses"]
        assert str(response.status_code) in answers, (path, response.status_code, response.text)
        media = response.headers["content-type"].split(";")[0].strip()
        content = answers[str(response.status_code)]["content"]
        assert media in content, (path, media, list(content))
        # The document is the root, so its "#/components/schemas/..." references resolve.
        root = {**content[media]["schema"], "components": self.doc["components"]}
        validator = jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())
        errors = sorted(validator.iter_errors(response.json()), key=str)
        assert not errors, f"{method} {path} {response.status_code}: {errors[0].message}"
        self.seen.add((method, path, response.status_code))


@pytest.fixture
def mailbox(services: Services) -> MemoryBackend:
    assert services.delivery is not None
    backend = services.delivery.backend
    assert isinstance(backend, MemoryBackend)
    return backend


def _mailed_code(mailbox: MemoryBackend, address: str) -> str:
    return code_in(text_of(mailbox.to(address)[-1].message))


async def walk(
    contract: Contract,
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    """Reach every JSON success answer once, checking each against the document."""
    app = provision(app_settings={"passwordless": True})
    strict = provision(app_settings={"require_verified_email": True})

    async def call(
        method: str,
        path: str,
        expect: int,
        *,
        on: AppRecord = app,
        names: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        url = path.replace("{app_id}", on.app_id)
        for name, value in (names or {}).items():
            url = url.replace("{" + name + "}", value)
        response = await http.request(method, url, **kwargs)
        assert response.status_code == expect, (method, url, response.text)
        contract.check(method, path, response)
        return response

    async def deliver() -> None:
        assert services.delivery is not None
        await services.delivery.deliver_app(app)

    for path in ("/healthz", "/readyz", "/openapi.json"):
        await call("GET", path, 200)
    await call("GET", "/.well-known/oauth-authorization-server/apps/{app_id}", 200)
    await call("GET", "/apps/{app_id}/.well-known/openid-configuration", 200)
    await call("GET", "/apps/{app_id}/.well-known/jwks.json", 200)
    cid = (await call("GET", "/apps/{app_id}/v1/app", 200)).json()["default_client_id"]

    email = f"contract-{secrets.token_hex(4)}@example.com"
    credentials = {"email": email, "password": PASSWORD}
    await call("POST", "/apps/{app_id}/v1/signup", 201, json=credentials)
    await call("POST", "/apps/{app_id}/v1/signup", 202, on=strict, json=credentials)
    tokens = (await call("POST", "/apps/{app_id}/v1/login", 200, json=credentials)).json()
    auth = {"authorization": f"Bearer {tokens['access_token']}"}
    await call("GET", "/apps/{app_id}/v1/me", 200, headers=auth)

    token = "/apps/{app_id}/oauth/token"
    refreshed = await call(
        "POST",
        token,
        200,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        | {"client_id": cid},
    )
    svc_id, svc_secret = confidential_client(settings, app)
    service_token = await call(
        "POST", token, 200, data={"grant_type": "client_credentials"}, auth=(svc_id, svc_secret)
    )
    introspect = "/apps/{app_id}/oauth/introspect"
    for value in (
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
        service_token.json()["access_token"],
        "not-a-token",
    ):
        await call("POST", introspect, 200, data={"token": value}, auth=(svc_id, svc_secret))

    # A third-party client through the code flow: its token's answers differ.
    rp, _ = register(settings, app)
    flow = await sign_in(browser, app.app_id, rp, email)
    issued = await exchange(browser, app.app_id, rp, flow.code, flow.verifier, redirect_uri=RP)
    assert issued.status_code == 200, issued.text
    contract.check("POST", token, issued)
    assert "id_token" in issued.json()
    third = {"authorization": f"Bearer {issued.json()['access_token']}"}
    await call("GET", "/apps/{app_id}/v1/me", 200, headers=third)
    await call("GET", "/apps/{app_id}/oauth/userinfo", 200, headers=third)
    await call(
        "POST",
        "/apps/{app_id}/oauth/userinfo",
        200,
        data={"access_token": issued.json()["access_token"]},
    )
    await call("GET", "/apps/{app_id}/v1/sessions", 200, headers=auth)
    listed = await call("GET", "/apps/{app_id}/v1/consents", 200, headers=auth)
    assert [c["client_id"] for c in listed.json()["consents"]] == [rp]

    # Mailed codes: email change, passwordless, verification.
    await call("POST", "/apps/{app_id}/v1/password/reset/request", 202, json={"email": email})
    new = f"moved-{secrets.token_hex(4)}@example.com"
    started = await call(
        "POST",
        "/apps/{app_id}/v1/email/change",
        202,
        json={"new_email": new, "password": PASSWORD},
        headers=auth,
    )
    await deliver()
    await call(
        "POST",
        "/apps/{app_id}/v1/email/change/confirm",
        200,
        json={"flow_token": started.json()["flow_token"], "code": _mailed_code(mailbox, new)},
    )
    started = await call(
        "POST", "/apps/{app_id}/v1/passwordless/start", 202, json={"email": new, "method": "code"}
    )
    await deliver()
    await call(
        "POST",
        "/apps/{app_id}/v1/passwordless/complete",
        200,
        json={"flow_token": started.json()["flow_token"], "code": _mailed_code(mailbox, new)},
    )
    # A first proof of the mailbox clears a password set before it and ends the
    # user's sessions: another user's, so nothing above depended on it.
    other = f"verify-{secrets.token_hex(4)}@example.com"
    await call("POST", "/apps/{app_id}/v1/signup", 201, json={"email": other, "password": PASSWORD})
    started = await call(
        "POST", "/apps/{app_id}/v1/email/verify/request", 202, json={"email": other}
    )
    await deliver()
    await call(
        "POST",
        "/apps/{app_id}/v1/email/verify",
        200,
        json={"flow_token": started.json()["flow_token"], "code": _mailed_code(mailbox, other)},
    )

    # Second factors (issue 12), for a user of their own: the code flow above
    # signed in with a password only.
    second = {"email": f"mfa-{secrets.token_hex(4)}@example.com", "password": PASSWORD}
    signed = await call("POST", "/apps/{app_id}/v1/signup", 201, json=second)
    bearer = {"authorization": f"Bearer {signed.json()['access_token']}"}
    enrol = (await call("POST", "/apps/{app_id}/v1/mfa/totp", 201, json={}, headers=bearer)).json()
    totp = pyotp.TOTP(enrol["secret"])
    await call(
        "POST",
        "/apps/{app_id}/v1/mfa/totp/confirm",
        200,
        json={"factor_id": enrol["factor_id"], "code": totp.now()},
        headers=bearer,
    )
    pending = await http.post(f"/apps/{app.app_id}/v1/login", json=second)
    assert pending.status_code == 403, pending.text
    assert pending.json()["code"] == "mfa_required", pending.text
    # The confirmation spent this step's code; the next step's is within the drift.
    done = await call(
        "POST",
        "/apps/{app_id}/v1/login/mfa",
        200,
        json={
            "flow_token": pending.json()["flow_token"],
            "factor": "totp",
            "code": totp.at(totp.timecode(datetime.now(UTC)) * 30 + 30),
        },
    )
    strong = {"authorization": f"Bearer {done.json()['access_token']}"}
    await call("GET", "/apps/{app_id}/v1/mfa", 200, headers=strong)
    await call(
        "PATCH",
        "/apps/{app_id}/v1/mfa/{factor_id}",
        200,
        names={"factor_id": enrol["factor_id"]},
        json={"name": "phone"},
        headers=strong,
    )
    await call("POST", "/apps/{app_id}/v1/mfa/recovery-codes", 200, json={}, headers=strong)
    # A passkey for that user (a sign-in that used the factor may add one), then the
    # options of a passwordless passkey sign-in.
    options = await call(
        "POST", "/apps/{app_id}/v1/mfa/webauthn/registration/options", 200, json={}, headers=strong
    )
    credential = SoftAuthenticator().create(options.json()["publicKey"], ORIGIN)
    await call(
        "POST",
        "/apps/{app_id}/v1/mfa/webauthn/registration",
        201,
        json={"credential": credential},
        headers=strong,
    )
    await call("POST", "/apps/{app_id}/v1/mfa/webauthn/authentication/options", 200, json={})


async def walk_passkey_pages(
    contract: Contract,
    service: Starlette,
    http: httpx.AsyncClient,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    """The hosted pages' JSON answers: passkey sign-in options on the login page,
    registration on the account page, and passkey enrolment where MFA is required."""

    async def browser() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=service)
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def check(path: str, app: AppRecord, response: httpx.Response, expect: int) -> None:
        assert response.status_code == expect, (path, response.text)
        contract.check("POST", path, response)

    app = provision()
    client_id, _ = register(settings, app)
    email = f"pk-{secrets.token_hex(4)}@example.com"
    made = await http.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert made.status_code == 201, made.text
    async with await browser() as b:
        _, challenge = pkce_pair()
        page = await b.get(
            f"/apps/{app.app_id}/oauth/authorize", params=authorize_params(client_id, challenge)
        )
        box = passkey_box(page.text)
        csrf = {box["csrf-field"]: box["csrf"]}
        options = await b.post(
            box["options-url"], data={**csrf, "flow": box["flow"], "flow_token": ""}
        )
        check("/apps/{app_id}/passkey/options", app, options, 200)
        signed = await b.post(
            f"/apps/{app.app_id}/login",
            data={**csrf, "flow": box["flow"], "email": email, "password": PASSWORD},
        )
        assert signed.status_code == 303, signed.text
        header = {"x-csrf-token": box["csrf"]}
        options = await b.post(f"/apps/{app.app_id}/account/passkeys/options", headers=header)
        check("/apps/{app_id}/account/passkeys/options", app, options, 200)
        credential = SoftAuthenticator().create(options.json()["publicKey"], ORIGIN)
        stored = await b.post(
            f"/apps/{app.app_id}/account/passkeys", json={"credential": credential}, headers=header
        )
        check("/apps/{app_id}/account/passkeys", app, stored, 201)

    only = provision(app_settings={"mfa": "required", "mfa_factors": ["webauthn", "recovery_code"]})
    client_id, _ = register(settings, only)
    await http.post(f"/apps/{only.app_id}/v1/signup", json={"email": email, "password": PASSWORD})
    async with await browser() as b:
        _, challenge = pkce_pair()
        page = await b.get(
            f"/apps/{only.app_id}/oauth/authorize", params=authorize_params(client_id, challenge)
        )
        login = form(page.text)
        enrol = await b.post(
            login.action, data={**login.fields, "email": email, "password": PASSWORD}
        )
        assert enrol.status_code == 200, enrol.text
        found = re.search(
            r"<div class=\"passkey\" hidden data-passkey-enrol(.*?)>", enrol.text, re.S
        )
        assert found, enrol.text
        box = {k: unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', found.group(1))}
        options = await b.post(
            box["options-url"],
            data={box["csrf-field"]: box["csrf"], "flow_token": box["flow-token"]},
        )
        check("/apps/{app_id}/passkey/enrol/options", only, options, 200)


async def walk_orgs(
    contract: Contract,
    http: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    """The organization API (issue 13): an org made by its admin, an invitation
    mailed and accepted, a member's roles changed, a domain offer joined."""
    app = provision(app_settings={"org_self_service": True})
    domain = f"{app.app_id}.example.com"

    async def user(email: str) -> dict[str, str]:
        made = await http.post(
            f"/apps/{app.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
        )
        assert made.status_code == 201, made.text
        async with services.router.enter(app) as conn:  # as a mailed proof would
            await conn.execute(
                "UPDATE users SET email_verified = true WHERE id = $1::uuid",
                made.json()["user"]["id"],
            )
        return {
            "authorization": f"Bearer {made.json()['access_token']}",
            "id": made.json()["user"]["id"],
        }

    async def call(method: str, path: str, expect: int, who: dict[str, str], **kwargs: Any) -> Any:
        url = path.replace("{app_id}", app.app_id)
        for name, value in kwargs.pop("names", {}).items():
            url = url.replace("{" + name + "}", value)
        headers = {"authorization": who["authorization"]}
        response = await http.request(method, url, headers=headers, **kwargs)
        assert response.status_code == expect, (method, url, response.text)
        contract.check(method, path, response)
        return response.json()

    admin = await user(f"admin@{domain}")
    org = await call("POST", "/apps/{app_id}/v1/orgs", 201, admin, json={"name": "Acme"})
    ids = {"org_id": org["id"]}
    await call("GET", "/apps/{app_id}/v1/orgs", 200, admin)
    await call("GET", "/apps/{app_id}/v1/orgs/{org_id}", 200, admin, names=ids)
    guest = f"guest-{secrets.token_hex(4)}@example.com"
    await call(
        "POST",
        "/apps/{app_id}/v1/orgs/{org_id}/invitations",
        201,
        admin,
        names=ids,
        json={"email": guest},
    )
    await call("GET", "/apps/{app_id}/v1/orgs/{org_id}/invitations", 200, admin, names=ids)
    assert services.delivery is not None
    await services.delivery.deliver_app(app)
    link = re.search(r"token=([A-Za-z0-9_-]+)", text_of(mailbox.to(guest)[-1].message))
    assert link, "no invitation link"
    invitee = await user(guest)
    await call(
        "POST", "/apps/{app_id}/v1/invitations/accept", 200, invitee, json={"token": link.group(1)}
    )
    await call("GET", "/apps/{app_id}/v1/orgs/{org_id}/members", 200, admin, names=ids)
    await call(
        "PATCH",
        "/apps/{app_id}/v1/orgs/{org_id}/members/{user_id}",
        200,
        admin,
        names={**ids, "user_id": invitee["id"]},
        json={"roles": ["admin"]},
    )
    async with services.router.enter(app) as conn:
        offered = await orgs.create(conn, name="Offered", actor=OPERATOR)
        await domains.add(conn, offered.id, domain, actor=OPERATOR)
        await domains.verify(conn, offered.id, domain, actor=OPERATOR)
        await orgs.update(conn, offered.id, join_policy="offer", actor=OPERATOR)
    await call("GET", "/apps/{app_id}/v1/orgs/offers", 200, admin)
    await call(
        "POST", "/apps/{app_id}/v1/orgs/{org_id}/join", 200, admin, names={"org_id": offered.id}
    )


async def walk_admin(
    contract: Contract,
    http: httpx.AsyncClient,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    """The app admin API (issue 15): users, with an admin client's token."""
    from admin._support import admin_token

    app = provision()
    headers = {"authorization": f"Bearer {await admin_token(http, settings, app)}"}

    async def call(method: str, path: str, expect: int, **kwargs: Any) -> Any:
        url = path.replace("{app_id}", app.app_id)
        for name, value in kwargs.pop("names", {}).items():
            url = url.replace("{" + name + "}", value)
        response = await http.request(method, url, headers=headers, **kwargs)
        assert response.status_code == expect, (method, url, response.text)
        if response.status_code != 204:
            contract.check(method, path, response)
        return response.json() if response.content else None

    users = "/apps/{app_id}/admin/v1/users"
    one = users + "/{user_id}"
    made = await call("POST", users, 201, json={"email": "admin-walk@example.com"})
    names = {"user_id": made["id"]}
    await call("GET", users, 200, params={"email": "admin-walk", "limit": "1"})
    await call("GET", one, 200, names=names)
    await call("PATCH", one, 200, names=names, json={"email_verified": True})
    await call("GET", one + "/sessions", 200, names=names)
    await call("POST", one + "/sessions/revoke", 200, names=names)
    await call("POST", one + "/mfa/reset", 200, names=names)
    await call("POST", one + "/disable", 200, names=names)
    await call("POST", one + "/enable", 200, names=names)
    await call("DELETE", one, 204, names=names)
    audit = "/apps/{app_id}/admin/v1/audit"
    await call("GET", audit, 200, params={"event": "admin", "limit": "2"})
    await call("POST", audit + "/verify", 200)
    await call("GET", audit + "/checkpoints", 200)


async def walk_federation(
    contract: Contract,
    http: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> bool:
    """Federation (issue 14): a first-party start through panva's oidc-provider, the
    code at /v1/federation/complete, the identity at /v1/identities. False when the
    machine has no node/npm for the upstream (the caller then expects no answer of
    these routes)."""
    from federation.rig.node_op import Account, RigUnavailable, UpstreamOP
    from federation.test_finish_link_code import passkey_box
    from federation.test_surfaces import (
        LINK_URL,
        Fed,
        add_provider,
        first_party_code,
        local_account,
        through_upstream,
    )
    from oneauth.testing.node import node_tools

    try:
        node_tools()
    except RigUnavailable:
        return False
    op = UpstreamOP().start()
    try:
        app = provision(app_settings={"link_urls": [LINK_URL]})
        fed = Fed(app, add_provider(settings, services, app, op), "")
        async with httpx.AsyncClient(timeout=10.0) as upstream_http:
            code = await first_party_code(http, upstream_http, op, fed, Account.new())
            # The link page of an existing account: its passkey options (F11).
            email = await local_account(http, services, fed)
            start = f"{fed.issuer}/federation/{fed.provider_id}/start?redirect_uri={LINK_URL}"
        # A new browser at the upstream (its session there is the first account's).
        async with httpx.AsyncClient(timeout=10.0) as upstream_http:
            page = await through_upstream(http, upstream_http, op, start, Account.new(email))
            box = passkey_box(page.text)
            options = await http.post(
                box["options-url"],
                data={box["csrf-field"]: box["csrf"], "flow_token": box["flow-token"]},
            )
            contract.check("POST", "/apps/{app_id}/federation/link/passkey/options", options)
            http.cookies.clear()
    finally:
        op.stop()
    tokens = await http.post(f"{fed.base}/v1/federation/complete", json={"code": code})
    contract.check("POST", "/apps/{app_id}/v1/federation/complete", tokens)
    listed = await http.get(
        f"{fed.base}/v1/identities",
        headers={"authorization": f"Bearer {tokens.json()['access_token']}"},
    )
    contract.check("GET", "/apps/{app_id}/v1/identities", listed)
    return True


async def walk_webhooks(
    contract: Contract,
    http: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    """The webhook routes of the admin API (issue 15): an endpoint made, shown,
    changed, its secret rotated, a delivery listed and replayed."""
    from admin._support import admin_token

    app = provision()
    token = await admin_token(http, settings, app, ["admin:webhooks:read", "admin:webhooks:write"])
    base = "/apps/{app_id}/admin/v1/webhooks"

    async def call(method: str, path: str, expect: int, **kwargs: Any) -> Any:
        url = path.replace("{app_id}", app.app_id)
        for name, value in kwargs.pop("names", {}).items():
            url = url.replace("{" + name + "}", str(value))
        headers = {"authorization": f"Bearer {token}"}
        response = await http.request(method, url, headers=headers, **kwargs)
        assert response.status_code == expect, (method, url, response.text)
        contract.check(method, path, response)
        return response.json()

    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["org.created"]}
    made = await call("POST", base, 201, json=body)
    ids = {"endpoint_id": made["endpoint"]["id"]}
    await call("GET", base, 200)
    await call("GET", f"{base}/event-types", 200)
    await call("GET", f"{base}/{{endpoint_id}}", 200, names=ids)
    await call("PATCH", f"{base}/{{endpoint_id}}", 200, names=ids, json={"description": "d"})
    await call("POST", f"{base}/{{endpoint_id}}/secret", 200, names=ids)
    async with services.router.enter(app) as conn:
        await orgs.create(conn, name="Hooked", actor=OPERATOR)  # emits org.created
    listed = await call("GET", f"{base}/{{endpoint_id}}/deliveries", 200, names=ids)
    await call(
        "POST",
        f"{base}/deliveries/{{delivery_id}}/replay",
        202,
        names={"delivery_id": listed["items"][0]["id"]},
    )


@pytest.fixture
async def browser(service: Starlette) -> Any:
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_every_json_answer_matches_its_declared_model(
    service: Starlette,
    services: Services,
    settings: Settings,
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    doc = document(service.routes)
    contract = Contract(doc)
    await walk(contract, client, browser, services, settings, provision, mailbox)
    await walk_passkey_pages(contract, service, client, settings, provision)
    await walk_orgs(contract, client, services, provision, mailbox)
    await walk_admin(contract, client, settings, provision)
    await walk_admin_rest(contract, client, settings, provision)
    await walk_platform(contract, client, settings)
    await walk_webhooks(contract, client, services, settings, provision)
    expected = json_answers(doc)
    if not await walk_federation(contract, client, services, settings, provision):
        expected = {a for a in expected if "/federation/" not in a[1] and "identities" not in a[1]}
    missing = expected - contract.seen
    assert not missing, f"JSON answers in /openapi.json that no step reaches: {sorted(missing)}"


class WrongMe(msgspec.Struct):
    """Me as it is not: the check must notice."""

    sub: int
    email_address: str


async def test_a_model_that_differs_from_the_wire_fails_the_check(
    service: Starlette, client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    doc = document(service.routes)
    wrong = schema_components([WrongMe], "#/components/schemas/{name}")["WrongMe"]
    doc["components"]["schemas"]["Me"] = wrong
    app = provision()
    email = f"wrong-{secrets.token_hex(4)}@example.com"
    signed = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert signed.status_code == 201
    me = await client.get(
        f"/apps/{app.app_id}/v1/me",
        headers={"authorization": f"Bearer {signed.json()['access_token']}"},
    )
    with pytest.raises(AssertionError, match="v1/me 200"):
        Contract(doc).check("GET", "/apps/{app_id}/v1/me", me)
