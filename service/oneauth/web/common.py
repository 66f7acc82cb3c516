"""What the hosted pages of every flow share: the error page, the resume URL, CSP targets."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from oneauth.apps.models import AppRecord
from oneauth.oauth import redirect_uri as redirect_uris
from oneauth.services import Services
from oneauth.web.render import render


def targets(uri: str) -> tuple[str, ...]:
    """The ``form-action`` origins a flow ending at ``uri`` needs (see render.py)."""
    origin = redirect_uris.origin(uri)
    return (origin,) if origin else ()


def error_page(
    request: Request,
    services: Services,
    app: AppRecord,
    message: str,
    *,
    title: str = "This sign-in request cannot continue",
    code: str | None = None,
    status: int = 400,
) -> Response:
    return render(
        request,
        services,
        app,
        "error.html",
        {"title": title, "message": message, "code": code},
        status=status,
    )


def expired(request: Request, services: Services, app: AppRecord) -> Response:
    return error_page(
        request,
        services,
        app,
        "This sign-in has expired. Go back to the application and start again.",
        code="flow_expired",
    )


def continue_url(issuer: str, sealed: str) -> str:
    return f"{issuer}/oauth/authorize/continue?{urlencode({'flow': sealed})}"
