"""OAuth endpoints answer errors in RFC 6749 section 5.2 format, not problem details."""

from __future__ import annotations

import json
import re

from starlette.requests import Request
from starlette.responses import Response

# Every app's issuer path, and the control plane's (/platform).
_OAUTH_PATH = re.compile(r"/(?:apps/[^/]+|platform)/oauth/")


def is_oauth_path(path: str) -> bool:
    """Whether errors on this path are due in RFC 6749 format (the /oauth endpoints)."""
    return _OAUTH_PATH.match(path) is not None


class OAuthError(Exception):
    """One class per RFC 6749 error code; ``description`` is safe to show."""

    error = "invalid_request"
    status = 400

    def __init__(self, description: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.headers = headers or {}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    # RFC 6749 5.2: 401 with WWW-Authenticate when the client tried HTTP auth.
    error, status = "invalid_client", 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTokenError(OAuthError):
    # RFC 6750 section 3.1
    error, status = "invalid_token", 401


class InsufficientScopeError(OAuthError):
    error, status = "insufficient_scope", 403


class TemporarilyUnavailable(OAuthError):
    error, status = "temporarily_unavailable", 503


def oauth_error_response(exc: OAuthError) -> Response:
    headers = {"cache-control": "no-store", "pragma": "no-cache", **exc.headers}
    body = {"error": exc.error, "error_description": exc.description}
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )


async def oauth_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return oauth_error_response(exc)
