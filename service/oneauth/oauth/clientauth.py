"""Client authentication at the token, revocation and introspection endpoints.

RFC 6749 section 2.3: ``client_secret_basic`` (HTTP Basic with form-encoded id
and secret), ``client_secret_post`` (form fields), ``private_key_jwt`` (RFC 7523
section 2.2: a JWT signed with the client's key, see
:mod:`oneauth.oauth.client_assertion`), or a public client naming itself with
``client_id``. A client uses only the method it registered, and a request that
uses two methods at once is refused (section 2.3).

The form parameters come decoded in the endpoint's model (a
:class:`~oneauth.oauth.models.ClientAuth`), lengths already bounded; a member
is None when the parameter was not sent.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus, urlsplit

import asyncpg
from starlette.requests import Request

from oneauth.oauth import client_assertion
from oneauth.oauth.clients import Client, ClientCache
from oneauth.oauth.errors import InvalidClient, InvalidRequest
from oneauth.oauth.models import ClientAuth
from oneauth.untrusted import text_problem


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("malformed Basic authorization header") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidRequest("malformed Basic authorization header")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    # Decoded twice (base64, then percent-encoding: RFC 6749 section 2.3.1), so
    # a NUL can hide from the input guard; the id is looked up in Postgres (I1).
    if text_problem(client_id) or text_problem(secret):
        raise InvalidRequest("malformed Basic authorization header")
    return client_id, secret


def _invalid(app_id: str, basic: bool) -> InvalidClient:
    headers = {"www-authenticate": f'Basic realm="{app_id}"'} if basic else {}
    return InvalidClient("client authentication failed", headers=headers)


async def authenticate_client(
    request: Request,
    form: ClientAuth,
    conn: asyncpg.Connection,
    cache: ClientCache,
    app_id: str,
    *,
    confidential_only: bool = False,
) -> Client:
    basic = _basic(request)
    post_secret = form.client_secret
    form_id = form.client_id
    if basic is not None and (post_secret is not None or (form_id and form_id != basic[0])):
        raise InvalidRequest("use one client authentication method per request")
    if form.client_assertion is not None or form.client_assertion_type is not None:
        if basic is not None or post_secret is not None:
            raise InvalidRequest("use one client authentication method per request")
        return await _by_assertion(request, form, conn, cache, app_id, form_id)
    if basic is not None:
        client_id, secret, method = basic[0], basic[1], "client_secret_basic"
    elif post_secret is not None:
        client_id, secret, method = form_id or "", post_secret, "client_secret_post"
    elif form_id:
        client_id, secret, method = form_id, None, "none"
    else:
        raise _invalid(app_id, False)
    client = await cache.get(conn, app_id, client_id)
    if client is None or client.disabled or client.token_endpoint_auth_method != method:
        raise _invalid(app_id, basic is not None)
    if secret is not None and not client.check_secret(secret):
        raise _invalid(app_id, basic is not None)
    if confidential_only and not client.is_confidential:
        raise _invalid(app_id, False)
    return client


async def _by_assertion(
    request: Request,
    form: ClientAuth,
    conn: asyncpg.Connection,
    cache: ClientCache,
    app_id: str,
    form_id: str | None,
) -> Client:
    assertion = form.client_assertion or ""
    if form.client_assertion_type != client_assertion.ASSERTION_TYPE or not assertion:
        raise InvalidRequest(f"client_assertion_type must be {client_assertion.ASSERTION_TYPE}")
    client_id = form_id or client_assertion.unverified_subject(assertion) or ""
    client = await cache.get(conn, app_id, client_id)
    if (
        client is None
        or client.disabled
        or client.token_endpoint_auth_method != "private_key_jwt"
        or client.jwks is None
    ):
        raise _invalid(app_id, False)
    issuer = request.app.state.services.settings.issuer_for(app_id)
    # The path under the issuer, whichever mount serves it (/apps/A or /platform).
    endpoint = issuer + request.url.path.removeprefix(urlsplit(issuer).path)
    audiences = frozenset({issuer, f"{issuer}/oauth/token", endpoint})
    try:
        claims = client_assertion.verify(assertion, client.client_id, client.jwks, audiences)
    except client_assertion.AssertionRejected:
        raise _invalid(app_id, False) from None
    if not await client_assertion.remember(conn, client.client_id, claims["jti"], claims["exp"]):
        raise _invalid(app_id, False)  # replayed
    return client
