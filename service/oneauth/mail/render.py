"""Rendering mail from Jinja2 templates: HTML + text + subject per kind, per app.

Templates run in Jinja2's sandbox with autoescaping for ``.html`` (safe by
default: operator-supplied templates cannot reach Python internals, and values
such as the app's display name are escaped in HTML). Missing variables are
errors (``StrictUndefined``), so a broken template dead-letters its message
instead of sending one without its link.

Lookup order for ``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``:

1. ``$ONEAUTH_EMAIL_TEMPLATES_DIR/apps/<app_id>/`` (one app),
2. ``$ONEAUTH_EMAIL_TEMPLATES_DIR/`` (every app of this deployment),
3. the defaults shipped in ``oneauth/mail/templates/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

KINDS = (
    "verify_email",
    "signup_existing",
    "reset_password",
    "magic_link",
    "email_otp",
    "change_email_confirm",
    "change_email_taken",
    "change_email_notice",
    "email_changed",
    "mfa_recovery_code_used",
    "mfa_factor_removed",
    "org_invitation",
    "federation_linked",
)
DEFAULTS = Path(__file__).resolve().parent / "templates"
_SPACE = re.compile(r"\s+")


class RenderError(Exception):
    """A template is missing or broken; the message says which (never the values)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    def __init__(self, overrides_dir: str | Path | None = None) -> None:
        search = [str(Path(overrides_dir))] if overrides_dir else []
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([*search, str(DEFAULTS)]),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def _template(self, app_id: str, name: str) -> jinja2.Template:
        # app_id was validated by the registry ([a-z0-9-]), so it is a safe path part.
        return self._env.select_template([f"apps/{app_id}/{name}", name])

    def render(self, app_id: str, kind: str, values: dict[str, Any]) -> Rendered:
        if kind not in KINDS:
            raise RenderError(f"unknown message kind {kind!r}")
        try:
            subject = self._template(app_id, f"{kind}.subject.txt").render(values)
            text = self._template(app_id, f"{kind}.txt").render(values)
            html = self._template(app_id, f"{kind}.html").render(values)
        except jinja2.TemplateError as exc:
            raise RenderError(f"template for {kind!r}: {type(exc).__name__}: {exc}") from None
        # One line, no control characters: a subject is a header (no injection).
        subject = _SPACE.sub(" ", subject).strip()[:200]
        return Rendered(subject=subject, text=text, html=html)
