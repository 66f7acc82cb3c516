"""No input reaches a 5xx (I1): nesting, NUL, lone surrogates, huge numbers.

Each case once reached a 500 (a ``RecursionError`` from the stdlib JSON parser,
``CharacterNotInRepertoireError`` from Postgres for a NUL, asyncpg's encoder for
a lone surrogate). Now the parsing layers answer a 4xx in the route's format:
problem details on the API, RFC 6749 errors on ``/oauth``. The property-based
sweep over every route is ``test_fuzz_routes.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from jwcrypto import jwk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apiclient import PASSWORD, default_client_id, signup
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.http.problems import exception_handlers
from oneauth.oauth import clients
from oneauth.services import Services
from oneauth.settings import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JSON = {"content-type": "application/json"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


def oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error


@pytest.fixture(scope="module")
def app(provision: Callable[..., AppRecord]) -> AppRecord:
    return provision()


# --- JSON bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60_000,  # unterminated: the parser recursed until RecursionError
        b'{"email":' * 7_000,
        b'{"email": "a@example.com", "password": ' + nested(33) + b"}",  # beyond MAX_DEPTH
    ],
    ids=["60k-brackets", "7k-objects", "depth-33"],
)
@pytest.mark.parametrize("path", ["/v1/signup", "/v1/login", "/v1/password/reset/request"])
async def test_deeply_nested_json_body_is_400(
    client: httpx.AsyncClient, app: AppRecord, path: str, body: bytes
) -> None:
    response = await client.post(f"/apps/{app.app_id}{path}", content=body, headers=JSON)
    detail = problem(response, 400, "invalid_json")["detail"]
    assert "nested" in detail or "not valid JSON" in detail


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"email": "a\\u0000@example.com", "password": "%s"}', "email"),
        ('{"email": "a\\ud800@example.com", "password": "%s"}', "email"),  # lone surrogate
        ('{"email": "b@example.com", "password": "%s\\udfff"}', "password"),
        ('{"email": "c@example.com", "password": "%s", "x": ["\\u0000"]}', "x"),
        ('{"email": "d@example.com", "password": "%s", "\\u0000": 1}', None),
    ],
)
@pytest.mark.parametrize("path", ["/v1/signup", "/v1/login"])
async def test_nul_or_lone_surrogate_anywhere_in_json_is_422(
    client: httpx.AsyncClient, app: AppRecord, path: str, raw: str, field: str | None
) -> None:
    body = (raw % PASSWORD).encode()
    response = await client.post(f"/apps/{app.app_id}{path}", content=body, headers=JSON)
    assert problem(response, 422, "validation_failed").get("field") == field


@pytest.mark.parametrize(
    "path",
    ["/v1/password/reset/request", "/v1/passwordless/start", "/v1/email/verify/request"],
)
@pytest.mark.parametrize(
    "payload",
    [
        {"email": "a\u0000@example.com"},
        {"email": "a@example.com", "redirect_uri": "https://rp.example.com/\u0000"},
    ],
)
async def test_nul_in_mail_requests_is_422(
    client: httpx.AsyncClient, app: AppRecord, path: str, payload: dict[str, str]
) -> None:
    response = await client.post(f"/apps/{app.app_id}{path}", json=payload)
    problem(response, 422, "validation_failed")


@pytest.mark.parametrize("number", ["9" * 5000, "1e999", "-1e999", "NaN", "Infinity", "2" * 25])
async def test_numbers_no_column_holds_are_400(
    client: httpx.AsyncClient, app: AppRecord, number: str
) -> None:
    body = f'{{"email": "a@example.com", "password": {number}}}'.encode()
    response = await client.post(f"/apps/{app.app_id}/v1/login", content=body, headers=JSON)
    problem(response, 400, "invalid_json")


# --- JOSE: bearer tokens, id_token_hint, client_assertion ---------------------------

HEADER = b64(json.dumps({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}).encode())
HINT_HEADER = b64(json.dumps({"alg": "ES256", "kid": "k1", "typ": "JWT"}).encode())
DEEP_SMALL = b64(nested(2_500))  # 6.7 KB: under every token size cap
DEEP_HEADER = b64(b'{"alg": "ES256", "kid": "k1", "x": ' + nested(2_400) + b"}")


@pytest.mark.parametrize(
    "token",
    [f"{DEEP_SMALL}.e30.AAAA", f"{DEEP_HEADER}.e30.AAAA", f"{HEADER}.{DEEP_SMALL}.AAAA"],
    ids=["nested-header", "nested-header-member", "nested-payload"],
)
async def test_nested_jwt_as_bearer_is_401(
    client: httpx.AsyncClient, app: AppRecord, token: str
) -> None:
    auth = {"authorization": f"Bearer {token}"}
    problem(await client.get(f"/apps/{app.app_id}/v1/me", headers=auth), 401, "invalid_token")
    problem(await client.post(f"/apps/{app.app_id}/v1/logout", headers=auth), 401, "invalid_token")
    oauth_error(
        await client.get(f"/apps/{app.app_id}/oauth/userinfo", headers=auth), 401, "invalid_token"
    )


@pytest.mark.parametrize(
    "hint",
    [
        f"{DEEP_SMALL}.e30.AAAA",
        f"{DEEP_HEADER}.e30.AAAA",
        f"{HINT_HEADER}.{DEEP_SMALL}.AAAA",
    ],
    ids=["nested-header", "nested-header-member", "nested-payload"],
)
async def test_nested_id_token_hint_is_a_4xx_page(
    client: httpx.AsyncClient, app: AppRecord, hint: str
) -> None:
    for response in (
        await client.get(f"/apps/{app.app_id}/oauth/logout", params={"id_token_hint": hint}),
        await client.post(f"/apps/{app.app_id}/oauth/logout", data={"id_token_hint": hint}),
    ):
        # Without a valid hint the user is asked to confirm (O6); never a 500.
        assert response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("text/html")


@pytest.fixture
def keyed_client(app: AppRecord, settings: Settings) -> str:
    """A private_key_jwt client, so an assertion naming it reaches the header check."""
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="k1")
    spec = clients.ClientSpec(
        name="Keyed",
        kind="confidential",
        grant_types=frozenset({"client_credentials"}),
        scopes=frozenset({"orders:read"}),
        auth_method="private_key_jwt",
        jwks={"keys": [json.loads(key.export_public())]},
    )
    with (
        ops.connect(settings.database_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        client, _ = clients.create(conn, spec)
    return client.client_id


@pytest.mark.parametrize("part", ["header", "header-member", "payload"])
async def test_nested_client_assertion_is_invalid_client(
    client: httpx.AsyncClient, app: AppRecord, keyed_client: str, part: str
) -> None:
    payload = b64(json.dumps({"iss": keyed_client, "sub": keyed_client}).encode())
    token = {
        "header": f"{DEEP_SMALL}.{payload}.AAAA",
        "header-member": f"{DEEP_HEADER}.{payload}.AAAA",
        "payload": f"{HEADER}.{DEEP_SMALL}.AAAA",
    }[part]
    for path in ("/oauth/token", "/oauth/introspect", "/oauth/revoke"):
        form = {
            "grant_type": "client_credentials",
            "token": "x",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": token,
        }
        response = await client.post(f"/apps/{app.app_id}{path}", data=form)
        oauth_error(response, 401, "invalid_client")


# --- NUL in strings that reach Postgres ---------------------------------------------


@pytest.mark.parametrize("client_id", ["cl_\u0000", "\u0000"])
async def test_nul_in_client_id_form_field_is_invalid_request(
    client: httpx.AsyncClient, app: AppRecord, client_id: str
) -> None:
    for path, form in [
        ("/oauth/token", {"grant_type": "refresh_token", "refresh_token": "x"}),
        ("/oauth/introspect", {"token": "x", "client_secret": "s"}),
        ("/oauth/revoke", {"token": "x"}),
    ]:
        response = await client.post(
            f"/apps/{app.app_id}{path}", data={**form, "client_id": client_id}
        )
        oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("credentials", [b"cl_\x00:secret", b"cl_%00:secret", b"cl_x:se\x00cret"])
async def test_nul_in_basic_credentials_is_invalid_request(
    client: httpx.AsyncClient, app: AppRecord, credentials: bytes
) -> None:
    auth = {"authorization": "Basic " + base64.b64encode(credentials).decode()}
    response = await client.post(
        f"/apps/{app.app_id}/oauth/token", data={"grant_type": "client_credentials"}, headers=auth
    )
    oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("field", ["client_id", "redirect_uri", "scope", "state"])
async def test_nul_in_authorize_query_is_invalid_request(
    client: httpx.AsyncClient, app: AppRecord, field: str
) -> None:
    client_id = await default_client_id(client, app.app_id)
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": "https://rp.example.com/cb",
        "code_challenge": "a" * 43,
        "code_challenge_method": "S256",
    }
    params[field] = params.get(field, "") + "\u0000"
    response = await client.get(f"/apps/{app.app_id}/oauth/authorize", params=params)
    oauth_error(response, 400, "invalid_request")


async def test_nul_in_path_parameters_is_400(client: httpx.AsyncClient, app: AppRecord) -> None:
    token = (await signup(client, app.app_id, "path-nul@example.com"))["access_token"]
    auth = {"authorization": f"Bearer {token}"}
    response = await client.delete(f"/apps/{app.app_id}/v1/consents/cl_%00", headers=auth)
    problem(response, 400, "bad_request")
    problem(await client.get("/apps/%00/v1/app"), 400, "bad_request")
    problem(
        await client.get(f"/.well-known/oauth-authorization-server/apps/{app.app_id}%00"),
        400,
        "bad_request",
    )


async def test_nul_in_query_of_hosted_pages_and_headers_is_400(
    client: httpx.AsyncClient, app: AppRecord
) -> None:
    for path in ("/recover?token=%00", "/verify?token=a%00b", "/signin/link?flow=%00"):
        problem(await client.get(f"/apps/{app.app_id}{path}"), 400, "bad_request")
    body = {"email": "a@example.com", "password": PASSWORD}
    for header in ("user-agent", "cookie"):
        response = await client.post(
            f"/apps/{app.app_id}/v1/login", json=body, headers={header: "a\u0000b"}
        )
        problem(response, 400, "bad_request")


async def test_nul_in_form_field_of_hosted_page_is_a_4xx_page(
    client: httpx.AsyncClient, app: AppRecord
) -> None:
    response = await client.post(f"/apps/{app.app_id}/login", data={"email": "a\u0000@x.com"})
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("text/html")


# --- the safety net ------------------------------------------------------------------


async def test_postgres_refusing_a_value_is_400_not_500(services: Services) -> None:
    """If a value slips past the parsers, Postgres' refusal is a 400 in the route's format."""

    async def store(request: Request) -> Response:
        value = request.query_params["v"].replace("NUL", "\x00").replace("SUR", "\ud800")
        await services.pool.fetchval("SELECT $1::text", value)
        return Response("stored")

    app = Starlette(
        routes=[Route("/apps/x/v1/store", store), Route("/apps/x/oauth/store", store)],
        exception_handlers=exception_handlers(),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for value in ("aNULb", "aSURb"):
            problem(await http.get("/apps/x/v1/store", params={"v": value}), 400, "bad_request")
            response = await http.get("/apps/x/oauth/store", params={"v": value})
            oauth_error(response, 400, "invalid_request")
        assert (await http.get("/apps/x/v1/store", params={"v": "fine"})).text == "stored"


async def test_postgres_data_errors_are_the_types_the_net_catches(services: Services) -> None:
    with pytest.raises(asyncpg.exceptions.CharacterNotInRepertoireError):
        await services.pool.fetchval("SELECT $1::text", "a\x00b")
    handled = exception_handlers()
    assert asyncpg.exceptions.DataError in handled
    assert asyncpg.exceptions._base.DataError in handled


# --- trailing slash (issue 10 item 6) ----------------------------------------------


@pytest.mark.parametrize(
    "path", ["/apps/{app}/v1/me/", "/apps/{app}/v1/app/", "/healthz/", "/apps/{app}/oauth/token/"]
)
async def test_trailing_slash_is_404_never_a_redirect_to_the_host_header(
    client: httpx.AsyncClient, app: AppRecord, path: str
) -> None:
    url = path.format(app=app.app_id)
    response = await client.get(url, headers={"host": "evil.example"})
    assert response.status_code == 404, (response.status_code, response.headers)
    assert "location" not in response.headers
    problem(response, 404, "not_found")
