"""Rendering the hosted pages: Jinja2 (autoescaped), app branding, security headers.

Every page answers with (O7):

* ``Content-Security-Policy: default-src 'none'; style-src 'self'; img-src 'self'
  https:; form-action 'self' <targets>; frame-ancestors 'none'; base-uri 'none'``:
  no inline script or style at all (branding comes from a per-app stylesheet), no
  framing (clickjacking of the consent button). ``form-action`` lists the origin
  the flow ends at, because Chromium applies ``form-action`` to the redirects that
  follow a form submission too (the 303 to the relying party's redirect URI);
* ``Cache-Control: no-store`` (pages carry CSRF tokens and flow handles);
* ``Referrer-Policy: same-origin``: the authorize URL (state, nonce) never goes
  to another origin; ``no-referrer`` would make Chromium send ``Origin: null``
  on the page's own form POSTs, defeating the Origin check of :mod:`.csrf`.

Redirects are 302 (after a GET) or 303 (after a POST), never 307/308, which would
replay a POST body (credentials) to the next hop (RFC 9700 section 4.12).

Pages of other flows extend ``base.html`` (blocks ``title`` and ``content``) and
use :func:`render` and :func:`redirect`; forms include
``<input type="hidden" name="{{ csrf_field }}" value="{{ csrf_token }}">`` and the
handler checks it with :func:`oneauth.web.csrf.check`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.services import Services
from oneauth.web import csrf
from oneauth.web.browser_session import set_cookie

HERE = Path(__file__).resolve().parent
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
DEFAULT_COLOR = "#1f5fbf"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its extension
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class Branding:
    app_name: str
    logo_url: str | None
    color: str  # validated #rrggbb
    text_color: str  # black or white, whichever contrasts more with ``color``


def valid_color(value: object) -> str | None:
    """``#rrggbb`` or None: nothing else ever reaches the stylesheet."""
    return value.lower() if isinstance(value, str) and _COLOR.fullmatch(value) else None


def valid_logo_url(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > 2000:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        return None
    return value


def _luminance(color: str) -> float:
    # WCAG 2.1 relative luminance.
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else float(((c + 0.055) / 1.055) ** 2.4)

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _text_on(color: str) -> str:
    lum = _luminance(color)
    # Contrast ratio against white (1.05 / (L + 0.05)) vs against black ((L + 0.05) / 0.05).
    return "#ffffff" if 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 else "#000000"


def branding(app: AppRecord) -> Branding:
    policy = policy_of(app)
    color = valid_color(policy.primary_color) or DEFAULT_COLOR
    return Branding(app.display_name, valid_logo_url(policy.logo_url), color, _text_on(color))


@cache
def _base_css() -> str:
    return (HERE / "static" / "oneauth.css").read_text(encoding="utf-8")


@lru_cache(maxsize=4096)
def stylesheet(color: str, text_color: str) -> bytes:
    """The shared stylesheet with one app's colours; both values are validated hex."""
    if not (_COLOR.fullmatch(color) and _COLOR.fullmatch(text_color)):
        raise ValueError("colours must be #rrggbb")
    theme = f":root {{ --brand: {color}; --brand-text: {text_color}; }}\n"
    return (theme + _base_css()).encode()


def content_security_policy(form_targets: Iterable[str] = (), *, scripts: bool = False) -> str:
    targets = " ".join(["'self'", *sorted(set(form_targets))])
    # Pages with a passkey button load /assets/passkeys.js, which fetches its options.
    script = "script-src 'self'; connect-src 'self'; " if scripts else ""
    return (
        f"default-src 'none'; {script}style-src 'self'; img-src 'self' https:; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )


def page_headers(form_targets: Iterable[str] = (), *, scripts: bool = False) -> dict[str, str]:
    return {
        "content-security-policy": content_security_policy(form_targets, scripts=scripts),
        "cache-control": "no-store",
        "pragma": "no-cache",
        "referrer-policy": "same-origin",
        "x-frame-options": "DENY",
    }


def render(
    request: Request,
    services: Services,
    app: AppRecord,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    form_targets: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    scripts: bool = False,
    issue_csrf: bool = True,
) -> HTMLResponse:
    """A hosted page of ``app``: branding, a CSRF token, and the headers above.
    ``issue_csrf=False``: a page without a form of ours that needs one, answering a
    request that came without this browser's cookies (federation's form_post
    re-post): no CSRF seed cookie is set, so the browser's own one stays."""
    settings = services.settings
    issuer = settings.issuer_for(app.app_id)
    token, new_seed = csrf.issue(request, settings, app.app_id) if issue_csrf else ("", None)
    brand = branding(app)
    values: dict[str, Any] = {
        "app_id": app.app_id,
        "brand": brand,
        "issuer": issuer,
        "style_url": f"{issuer}/assets/style.css?v={brand.color[1:]}",
        "csrf_field": csrf.FIELD,
        "csrf_token": token,
    }
    values.update(context or {})
    html = _ENV.get_template(template).render(values)
    response = HTMLResponse(
        html,
        status_code=status,
        headers={**page_headers(form_targets, scripts=scripts), **(headers or {})},
    )
    if new_seed is not None:
        set_cookie(response, settings, app.app_id, csrf.cookie_name(app.app_id), new_seed, None)
    return response


def redirect(url: str, status: int = 302, headers: Mapping[str, str] | None = None) -> Response:
    """302 after a GET, 303 after a POST; never 307 (see the module docstring)."""
    if status not in (302, 303):
        raise ValueError("hosted pages redirect with 302 or 303 only")
    return Response(
        status_code=status,
        headers={
            "location": url,
            "cache-control": "no-store",
            "pragma": "no-cache",
            "referrer-policy": "no-referrer",
            **(headers or {}),
        },
    )
