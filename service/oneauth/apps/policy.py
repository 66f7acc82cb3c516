"""Per-app policy, read from the registry's ``settings`` JSON with defaults.

Settings are validated when an app is provisioned; at run time a settings row
that does not validate (say, edited by hand) falls back to the defaults with a
warning in the log, so it cannot take the app down.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

import structlog

from oneauth.apps.models import AppRecord
from oneauth.tokens.keys import SUPPORTED_ALGS, Alg

# The longest an access or ID token may live; retired keys stay published this
# long (plus the JWKS cache time) so every token they signed can still verify.
MAX_TOKEN_TTL = 3600
_SENDER = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AppPolicy:
    signing_alg: Alg = "ES256"
    access_token_ttl: int = 600
    id_token_ttl: int = 600
    refresh_idle_ttl: int = 14 * 86400
    session_absolute_ttl: int = 30 * 86400
    audience: str | None = None
    # With verification required, signup answers the same whether or not the
    # email exists (no enumeration); without, signup logs in at once and an
    # existing email gets 409 email_taken (documented in README).
    require_verified_email: bool = False
    logo_url: str | None = None
    primary_color: str | None = None
    # Sign-in by magic link and email one-time code (issue 5); off by default.
    passwordless: bool = False
    # Sender of this app's mail; defaults: ONEAUTH_EMAIL_FROM and the display name.
    email_from: str | None = None
    email_from_name: str | None = None

    def audience_for(self, issuer: str) -> str:
        return self.audience or f"{issuer}/api"


_BOUNDS = {
    "access_token_ttl": (60, MAX_TOKEN_TTL),
    "id_token_ttl": (60, MAX_TOKEN_TTL),
    "refresh_idle_ttl": (300, 365 * 86400),
    "session_absolute_ttl": (300, 365 * 86400),
}


def parse(settings: dict[str, Any]) -> AppPolicy:
    """Validate app settings; raise PolicyError naming the bad key."""
    unknown = sorted(set(settings) - setting_names())
    if unknown:
        raise PolicyError(unknown_setting(unknown[0]))
    values = dict(settings)
    if "signing_alg" in values and values["signing_alg"] not in SUPPORTED_ALGS:
        raise PolicyError(f"signing_alg must be one of {', '.join(SUPPORTED_ALGS)}")
    for key, (low, high) in _BOUNDS.items():
        if key in values:
            value = values[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise PolicyError(f"{key} must be an integer from {low} to {high}")
    if "require_verified_email" in values and not isinstance(
        values["require_verified_email"], bool
    ):
        raise PolicyError("require_verified_email must be true or false")
    for key in ("audience", "logo_url", "primary_color", "email_from", "email_from_name"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            raise PolicyError(f"{key} must be a string")
    if "passwordless" in values and not isinstance(values["passwordless"], bool):
        raise PolicyError("passwordless must be true or false")
    if values.get("email_from") is not None and not _SENDER.fullmatch(values["email_from"]):
        raise PolicyError("email_from must be a plain address like no-reply@example.com")
    name = values.get("email_from_name")
    if name is not None and (
        not 1 <= len(name) <= 100 or any(unicodedata.category(ch)[0] == "C" for ch in name)
    ):
        # Goes into a From header: no control characters (header injection).
        raise PolicyError("email_from_name must be 1 to 100 characters without control characters")
    policy = AppPolicy(**values)
    if policy.refresh_idle_ttl > policy.session_absolute_ttl:
        raise PolicyError("refresh_idle_ttl must not exceed session_absolute_ttl")
    return policy


def setting_names() -> frozenset[str]:
    """Every per-app setting: the fields of AppPolicy, the one declaration."""
    return frozenset(f.name for f in fields(AppPolicy))


def unknown_setting(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(setting_names()), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown app setting {key!r}{hint} (known: {', '.join(sorted(setting_names()))})"


def effective(settings: dict[str, Any]) -> dict[str, Any]:
    """The stored settings merged over the defaults, as JSON values (``apps show``)."""
    policy = parse(settings)
    return {f.name: _jsonable(getattr(policy, f.name)) for f in fields(AppPolicy)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | frozenset | set):
        return [_jsonable(v) for v in value]
    return value


def policy_of(app: AppRecord) -> AppPolicy:
    """The app's policy, parsed once per registry record (no work on the hot path)."""
    policy = app.parsed_policy
    if policy is None:
        try:
            policy = parse(app.settings)
        except PolicyError as exc:
            structlog.get_logger("oneauth.policy").warning(
                "app_settings_invalid", app_id=app.app_id, error=str(exc)
            )
            policy = AppPolicy()
        object.__setattr__(app, "parsed_policy", policy)
    assert isinstance(policy, AppPolicy)
    return policy
