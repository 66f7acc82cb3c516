"""Validated names: roles, permissions, org slugs and names, email domains.

Each function returns the value to store or raises ``ValidationFailed`` with
the ``field`` named, so every surface answers bad input with the same clear
422 (never a database error). The SQL templates check the same shapes again.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import idna

from oneauth.errors import ValidationFailed

_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,63}")
_PERMISSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,99}")
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
# Invisible, control and separator characters (other than the plain space):
# two names that look alike must not be two names.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
MAX_ORG_NAME = 200
MAX_DESCRIPTION = 500
SLUG_MAX = 64


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, extra={"field": field})


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(field, f"{field} must be a string")
    return value


def role_name(value: Any, field: str = "role") -> str:
    """A role or org role name: ASCII letters, digits and ``:._-``, 1..64, as written."""
    text = _text(value, field)
    if _ROLE.fullmatch(text) is None:
        raise _fail(
            field,
            f"{field} must be 1-64 ASCII letters, digits or ':._-', starting with a letter "
            "or digit",
        )
    return text


def permission_name(value: Any, field: str = "permission") -> str:
    """A permission such as ``invoice:read``: ASCII, 1..100, as written."""
    text = _text(value, field)
    if _PERMISSION.fullmatch(text) is None:
        raise _fail(
            field,
            f"{field} must be 1-100 ASCII letters, digits or ':._-', starting with a letter "
            "or digit",
        )
    return text


def slug(value: Any, field: str = "slug") -> str:
    """An org slug: lower-case ASCII letters, digits and inner hyphens, 1..64."""
    text = _text(value, field)
    if _SLUG.fullmatch(text) is None:
        raise _fail(
            field,
            f"{field} must be 1-64 lower-case ASCII letters, digits or inner hyphens",
        )
    return text


def slug_from(name: str) -> str:
    """The slug derived from a display name: ``Acme Inc.`` -> ``acme-inc``."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:SLUG_MAX].rstrip("-") or "org"


def description(value: Any, field: str = "description") -> str:
    text = _text(value, field).strip()
    if len(text) > MAX_DESCRIPTION:
        raise _fail(field, f"{field} is longer than {MAX_DESCRIPTION} characters")
    _refuse_hidden(text, field)
    return text


def org_name(value: Any, field: str = "name") -> str:
    """An org's display name: any script, NFC, 1..200, no invisible characters."""
    text = unicodedata.normalize("NFC", _text(value, field).strip())
    if not text:
        raise _fail(field, f"{field} must not be empty")
    if len(text) > MAX_ORG_NAME:
        raise _fail(field, f"{field} is longer than {MAX_ORG_NAME} characters")
    _refuse_hidden(text, field)
    return text


def _refuse_hidden(text: str, field: str) -> None:
    if any(unicodedata.category(ch) in _HIDDEN for ch in text):
        raise _fail(field, f"{field} contains an invisible or control character")


def domain(value: Any, field: str = "domain") -> str:
    """An email domain as stored: lower case, IDNs as A-labels (``xn--...``), with a dot.

    ``Ü.example`` and ``xn--tda.example`` are one domain, as they are one domain
    in the users' normalized emails (B5).
    """
    text = _text(value, field).strip().rstrip(".")
    message = f"{field} must be a domain name such as example.com"
    if not text or "@" in text or len(text) > 253:
        raise _fail(field, message)
    lowered = text.lower()
    if not lowered.isascii() or "xn--" in lowered:
        try:
            lowered = idna.encode(unicodedata.normalize("NFC", text), uts46=True).decode()
        except idna.IDNAError:  # a UnicodeError
            raise _fail(field, message) from None
    labels = lowered.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _fail(field, message)
    if len(lowered) > 253 or labels[-1].isdigit():
        raise _fail(field, message)
    return lowered


def email_domain(email_normalized: str) -> str | None:
    """The stored form of a (normalized) email's domain; None if it has none we store."""
    _, at, host = email_normalized.rpartition("@")
    if not at:
        return None
    try:
        return domain(host)
    except ValidationFailed:
        return None


def color(value: Any, field: str) -> str:
    text = _text(value, field)
    if _COLOR.fullmatch(text) is None:
        raise _fail(field, f"{field} must be a colour such as #1a2b3c")
    return text.lower()
