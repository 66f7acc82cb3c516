"""Rendering the console's pages: Jinja2 (autoescaped), CSP, CSRF token, the banner.

The console's pages follow the hosted pages' rules (:mod:`oneauth.web.render`):
``Content-Security-Policy`` with ``script-src 'self'`` and no inline script or
style, ``frame-ancestors 'none'``, ``Cache-Control: no-store``, redirects 302
after a GET and 303 after a POST. Every page of an app carries the banner with
the app's name and id (``console/_banner.html``, included by ``console/app.html``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from oneauth.console.session import ConsoleSession, csrf_token
from oneauth.services import Services
from oneauth.web.render import page_headers

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its extension
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    request: Request,
    services: Services,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    session: ConsoleSession | None = None,
    status: int = 200,
) -> HTMLResponse:
    values: dict[str, Any] = {
        "operator_email": session.operator_email if session else None,
        "csrf_token": csrf_token(services.settings, session) if session else "",
    }
    values.update(context or {})
    html = _ENV.get_template(f"console/{template}").render(values)
    return HTMLResponse(html, status_code=status, headers=page_headers(scripts=True))


def redirect(url: str, status: int = 302) -> Response:
    """302 after a GET, 303 after a POST (never 307: it would replay a POST)."""
    if status not in (302, 303):
        raise ValueError("console pages redirect with 302 or 303 only")
    return Response(
        status_code=status,
        headers={"location": url, "cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


@lru_cache(maxsize=1)
def stylesheet() -> bytes:
    return (STATIC / "console.css").read_bytes()


@lru_cache(maxsize=1024)
def preview_stylesheet(color: str, text_color: str) -> bytes:
    """The branding preview's colours (validated hex only, as the app's stylesheet)."""
    if not (_COLOR.fullmatch(color) and _COLOR.fullmatch(text_color)):
        raise ValueError("colours must be #rrggbb")
    return (
        f".preview {{ --brand: {color}; --brand-text: {text_color}; }}\n"
        ".preview .preview-button { background: var(--brand); color: var(--brand-text); }\n"
        ".preview .preview-bar { border-top: 6px solid var(--brand); }\n"
    ).encode()
