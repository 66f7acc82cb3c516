"""Plain ASGI middleware: request ids, one canonical log line per request, the input
guard, the client address."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oneauth.http import forwarded
from oneauth.http.problems import problem_response
from oneauth.oauth.errors import InvalidRequest, is_oauth_path, oauth_error_response
from oneauth.untrusted import text_problem

log = structlog.get_logger("oneauth.http")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContext:
    """Binds request_id (from a sane ``X-Request-ID`` or a new one) to logs and responses.

    Logs one line per request: method, path (never the query string, which may
    carry codes), status and duration. Unhandled errors become a 500 problem.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled_error")
            if not response_started:
                response = problem_response(
                    500,
                    "internal_error",
                    "Internal error",
                    "An unexpected error occurred",
                    request_id,
                )
                await response(scope, receive, send_wrapper)
        finally:
            log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()


class InputGuard:
    """Refuses, before routing, a URL or header no handler could use (I1).

    The path (so every path parameter: app_id, client_id, ...), the decoded
    query string and every header value must be free of NUL and lone
    surrogates; Postgres text cannot hold them. Deciding it here covers every
    route, including future ones, and every later ``request.query_params``.
    Bodies are checked by their parsers (``oneauth.http.requests``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _url_or_header_problem(scope)
            if problem is not None:
                if is_oauth_path(str(scope.get("path", ""))):
                    response = oauth_error_response(InvalidRequest(problem))
                else:
                    response = problem_response(
                        400, "bad_request", "Bad request", problem, request_id_of(scope)
                    )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _url_or_header_problem(scope: Scope) -> str | None:
    problem = text_problem(str(scope.get("path", "")))
    if problem is not None:
        return f"the path {problem}"
    query = scope.get("query_string", b"")
    if (b"%" in query or b"\x00" in query) and b"\x00" in unquote_to_bytes(query):
        return "the query string contains a NUL character"
    for _name, value in scope.get("headers", ()):
        if b"\x00" in value:
            return "a header contains a NUL character"
    return None


class ClientAddress:
    """Derives the client's address once per request, for every consumer.

    Behind ``ONEAUTH_TRUSTED_PROXIES`` that is the forwarded client (see
    ``http/forwarded.py``), else the TCP peer. It is stored as
    ``scope["state"]["client_ip"]`` and replaces ``scope["client"]``, so throttles,
    audit rows and ``request.client`` all see the same address; the peer stays
    in ``scope["state"]["peer"]``.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self.trusted = forwarded.networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            peer = str(client[0]) if client else None
            address = forwarded.client_address(peer, scope.get("headers", ()), self.trusted)
            state = scope.setdefault("state", {})
            state["peer"] = peer
            state["client_ip"] = address
            if address != peer and address is not None:
                scope["client"] = (address, 0)
        await self.app(scope, receive, send)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


def request_id_of(scope_or_state: Any) -> str | None:
    state = scope_or_state.get("state", {}) if isinstance(scope_or_state, dict) else {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None
