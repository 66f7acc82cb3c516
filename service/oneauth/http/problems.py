"""RFC 9457 problem responses and the exception handlers that produce them."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from oneauth.errors import PROBLEM_CONTENT_TYPE, ApiError, ServiceUnavailable
from oneauth.oauth.errors import InvalidRequest, is_oauth_path, oauth_error_response

log = structlog.get_logger("oneauth.http")

_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}

# Errors that mean "the database is not there right now": fail closed with 503 (A3).
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.TooManyConnectionsError,
    # Q1: a FATAL sent by a server shutting down (57P01) can reach an idle
    # connection just before its socket closes; asyncpg then refuses the next
    # statement with "cannot switch to state ...; another operation is in
    # progress". The connection is gone like any other: 503, and the router
    # drops it (db/router.py, _abandon).
    asyncpg.exceptions._base.InternalClientError,
)


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:oneauth:error:{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    all_headers = {"cache-control": "no-store"}
    all_headers.update(headers or {})
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=all_headers,
    )


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem_response(
        exc.status, exc.code, exc.title, exc.detail, _request_id(request), exc.headers, exc.extra
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
    return problem_response(
        exc.status_code, code, title, detail, _request_id(request), dict(exc.headers or {})
    )


async def db_unavailable_handler(request: Request, exc: Exception) -> Response:
    log.warning("database_unavailable", error=type(exc).__name__)
    error = ServiceUnavailable("The database is unavailable; try again shortly")
    return problem_response(
        error.status,
        error.code,
        error.title,
        error.detail,
        _request_id(request),
        {"retry-after": "1"},
    )


async def data_refused_handler(request: Request, exc: Exception) -> Response:
    """Postgres refused a value (SQLSTATE class 22: a NUL, bad encoding, out of range).

    A safety net only (I1): the parsers in ``oneauth.http.requests``,
    ``oneauth.untrusted`` and the input guard refuse such input first, so this
    logs loudly, as a parsing gap to close, and answers 400, never 500.
    """
    log.error("database_refused_input", error=type(exc).__name__, path=request.url.path)
    detail = "the request contains a value that cannot be stored"
    if is_oauth_path(request.url.path):
        return oauth_error_response(InvalidRequest(detail))
    return problem_response(400, "bad_request", "Bad request", detail, _request_id(request))


def exception_handlers() -> dict[Any, Any]:
    handlers: dict[Any, Any] = {
        ApiError: api_error_handler,
        HTTPException: http_exception_handler,
        # SQLSTATE class 22: CharacterNotInRepertoireError (a NUL),
        # UntranslatableCharacterError, NumericValueOutOfRangeError, ...
        asyncpg.exceptions.DataError: data_refused_handler,
        # asyncpg's own "invalid input for query argument" (a str with a lone
        # surrogate it cannot encode); an InterfaceError, which would mean 503.
        asyncpg.exceptions._base.DataError: data_refused_handler,
    }
    for exc_type in DB_UNAVAILABLE:
        handlers[exc_type] = db_unavailable_handler
    return handlers
