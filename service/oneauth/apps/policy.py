"""Per-app policy, read from the registry's ``settings`` JSON with defaults.

Settings are validated when an app is provisioned; at run time a settings row
that does not validate (say, edited by hand) falls back to the defaults with a
warning in the log, so it cannot take the app down.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import structlog

from oneauth.apps.models import AppRecord
from oneauth.tokens.keys import SUPPORTED_ALGS, Alg

# The longest an access or ID token may live; retired keys stay published this
# long (plus the JWKS cache time) so every token they signed can still verify.
MAX_TOKEN_TTL = 3600
_SENDER = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


class PolicyError(ValueError):
    pass


MfaMode = Literal["off", "optional", "required"]
MFA_MODES: tuple[MfaMode, ...] = ("off", "optional", "required")
# Strategy names of the second factors (oneauth.strategies); recovery codes come
# with the first TOTP or passkey and are never enrolled alone.
SECOND_FACTORS: tuple[str, ...] = ("totp", "webauthn", "recovery_code")


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
    # Anyone may create an account (POST /v1/signup, the hosted registration page).
    # Off for invitation-only apps: both refuse with 403 signup_disabled.
    self_signup: bool = True
    # Signed-in users may create organizations (POST /v1/orgs) and become their
    # admin (issue 13). Off by default: orgs are the operator's (CLI) unless the
    # app is a self-service B2B product.
    org_self_service: bool = False
    logo_url: str | None = None
    primary_color: str | None = None
    # Sign-in by magic link and email one-time code (issue 5); off by default.
    passwordless: bool = False
    # Sender of this app's mail; defaults: ONEAUTH_EMAIL_FROM and the display name.
    email_from: str | None = None
    email_from_name: str | None = None
    # Where mail links may point besides the hosted pages (P6): the operator's
    # own list, matched exactly; never an OAuth client's redirect URIs.
    link_urls: tuple[str, ...] = ()
    # Second factors (issue 12). off: never asked; optional: asked of users who
    # enrolled one; required: every user, who enrols first if they have none.
    mfa: MfaMode = "optional"
    # The second factors users of this app may enrol and use.
    mfa_factors: tuple[str, ...] = SECOND_FACTORS
    # Remembering a browser so it skips the second factor is not offered: a
    # stolen device cookie would then be a second factor. Refused when true.
    remember_device: bool = False
    # How recent a sign-in must be (seconds) to change factors (/v1/mfa).
    mfa_change_max_age: int = 600
    # Passkeys (issue 12, W2): whether a passkey used as a second factor must
    # have verified the user (PIN, biometrics); passwordless passkey sign-in
    # always requires it. The RP ID is the issuer's host unless the app has a
    # host of its own (webauthn_origin) and names a registrable suffix of it.
    webauthn_user_verification: str = "preferred"
    webauthn_origin: str | None = None
    webauthn_rp_id: str | None = None
    # Every access token carries the ``permissions`` of the user's app roles
    # (issue 13); without it only tokens whose scope has ``permissions`` do.
    token_permissions: bool = False
    # Audit rows older than this many days are pruned in the background (A2),
    # after a signed checkpoint of the chain at the pruned-through row; None: kept.
    audit_retention_days: int | None = None

    def audience_for(self, issuer: str) -> str:
        return self.audience or f"{issuer}/api"


_BOUNDS = {
    "access_token_ttl": (60, MAX_TOKEN_TTL),
    "id_token_ttl": (60, MAX_TOKEN_TTL),
    "refresh_idle_ttl": (300, 365 * 86400),
    "session_absolute_ttl": (300, 365 * 86400),
    "mfa_change_max_age": (60, 86400),
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
    if "self_signup" in values and not isinstance(values["self_signup"], bool):
        raise PolicyError("self_signup must be true or false")
    if "org_self_service" in values and not isinstance(values["org_self_service"], bool):
        raise PolicyError("org_self_service must be true or false")
    for key in ("audience", "logo_url", "primary_color", "email_from", "email_from_name"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            raise PolicyError(f"{key} must be a string")
    if "passwordless" in values and not isinstance(values["passwordless"], bool):
        raise PolicyError("passwordless must be true or false")
    if "token_permissions" in values and not isinstance(values["token_permissions"], bool):
        raise PolicyError("token_permissions must be true or false")
    if values.get("email_from") is not None and not _SENDER.fullmatch(values["email_from"]):
        raise PolicyError("email_from must be a plain address like no-reply@example.com")
    name = values.get("email_from_name")
    if name is not None and (
        not 1 <= len(name) <= 100 or any(unicodedata.category(ch)[0] == "C" for ch in name)
    ):
        # Goes into a From header: no control characters (header injection).
        raise PolicyError("email_from_name must be 1 to 100 characters without control characters")
    if "link_urls" in values:
        values["link_urls"] = parse_link_urls(values["link_urls"])
    retention = values.get("audit_retention_days")
    if retention is not None and (
        not isinstance(retention, int) or isinstance(retention, bool) or not 1 <= retention <= 36500
    ):
        raise PolicyError("audit_retention_days must be an integer from 1 to 36500, or null")
    _parse_mfa(values)
    _parse_webauthn(values)
    policy = AppPolicy(**values)
    if policy.refresh_idle_ttl > policy.session_absolute_ttl:
        raise PolicyError("refresh_idle_ttl must not exceed session_absolute_ttl")
    return policy


def _parse_mfa(values: dict[str, Any]) -> None:
    if "mfa" in values and values["mfa"] not in MFA_MODES:
        raise PolicyError(f"mfa must be one of {', '.join(MFA_MODES)}")
    if "mfa_factors" in values:
        factors = values["mfa_factors"]
        if isinstance(factors, str):  # --set mfa_factors=totp,webauthn
            factors = [f.strip() for f in factors.split(",") if f.strip()]
        if not isinstance(factors, list | tuple) or not all(f in SECOND_FACTORS for f in factors):
            raise PolicyError(f"mfa_factors must be a list of {', '.join(SECOND_FACTORS)}")
        values["mfa_factors"] = tuple(dict.fromkeys(factors))
        if not set(values["mfa_factors"]) - {"recovery_code"}:
            raise PolicyError(
                "mfa_factors must name totp or webauthn (recovery codes back them up)"
            )
    if "remember_device" in values:
        if not isinstance(values["remember_device"], bool):
            raise PolicyError("remember_device must be true or false")
        if values["remember_device"]:
            raise PolicyError(
                "remember_device=true is not supported: every sign-in asks for the second factor"
            )


def _parse_webauthn(values: dict[str, Any]) -> None:
    """The passkey settings (W2). ``webauthn_rp_id`` must be the host of
    ``webauthn_origin`` or a registrable suffix of it (WebAuthn L3 5.1.3: a
    browser refuses any other); a bare public suffix (``com``) is refused."""
    if values.get("webauthn_user_verification", "preferred") not in ("preferred", "required"):
        raise PolicyError("webauthn_user_verification must be preferred or required")
    origin = values.get("webauthn_origin")
    rp_id = values.get("webauthn_rp_id")
    if origin is not None:
        if not isinstance(origin, str):
            raise PolicyError("webauthn_origin must be a string")
        values["webauthn_origin"] = origin = _webauthn_origin(origin)
    if rp_id is None:
        return
    if not isinstance(rp_id, str):
        raise PolicyError("webauthn_rp_id must be a string")
    if origin is None:
        raise PolicyError(
            "webauthn_rp_id needs webauthn_origin (the app's own public origin, e.g."
            " https://shop.example.com); without it the RP ID is the issuer's host"
        )
    host = urlsplit(origin).hostname or ""
    rp_id = rp_id.strip().lower().rstrip(".")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", rp_id):
        raise PolicyError("webauthn_rp_id must be a domain name such as example.com (not an IP)")
    if "." not in rp_id and rp_id != "localhost":
        raise PolicyError("webauthn_rp_id must not be a top-level domain alone")
    if host != rp_id and not host.endswith("." + rp_id):
        raise PolicyError(
            f"webauthn_rp_id {rp_id!r} must be {host!r} or a registrable suffix of it"
            " (the host of webauthn_origin)"
        )
    values["webauthn_rp_id"] = rp_id


def _webauthn_origin(value: str) -> str:
    """``scheme://host[:port]`` as a browser writes it in clientDataJSON."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise PolicyError("webauthn_origin is not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise PolicyError("webauthn_origin must be https://host[:port]")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise PolicyError("webauthn_origin is an origin: scheme://host[:port], no path")
    if _is_ip(host):
        raise PolicyError("webauthn_origin needs a domain name: WebAuthn refuses IP addresses")
    if parts.scheme == "http" and host != "localhost" and not host.endswith(".localhost"):
        raise PolicyError("webauthn_origin must use https (http only on localhost)")
    default = {"https": 443, "http": 80}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


MAX_LINK_URLS = 20
MAX_LINK_URL_LENGTH = 2048
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
# Schemes that run or embed content where a link lands: never a link destination.
_NEVER = {"javascript", "data", "vbscript", "file", "blob", "about", "mailto", "ftp", "ws", "wss"}


def parse_link_urls(value: Any) -> tuple[str, ...]:
    """Validate ``link_urls`` (P6); PolicyError names the key and the entry.

    The list is the authority: whatever the operator lists is allowed (custom
    schemes of native apps, http on loopback for development), and nothing
    else ever is. Entries must be absolute, without fragment, userinfo or a
    ``token`` parameter (the link's own), and https unless on loopback.
    """
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PolicyError("link_urls must be a list of absolute URLs (strings)")
    if len(value) > MAX_LINK_URLS:
        raise PolicyError(f"link_urls may list at most {MAX_LINK_URLS} URLs")
    for url in value:
        problem = _link_url_problem(url)
        if problem is not None:
            raise PolicyError(f"link_urls: {url[:100]!r} {problem}")
    return tuple(dict.fromkeys(value))


def _link_url_problem(url: str) -> str | None:
    if not 1 <= len(url) <= MAX_LINK_URL_LENGTH:
        return f"must be 1 to {MAX_LINK_URL_LENGTH} characters"
    if not url.isascii() or any(ch.isspace() or not ch.isprintable() for ch in url):
        return "must be ASCII without spaces or control characters"
    if "#" in url:
        return "must not have a fragment (#)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme
    if not scheme or not _SCHEME.fullmatch(scheme):
        return "must be absolute (scheme://...)"
    if not url.startswith(scheme + ":"):
        return "must have a lowercase scheme (matching is exact)"
    if scheme not in ("http", "https") and url[len(scheme) + 1 : len(scheme) + 2].isdigit():
        return "looks like host:port without a scheme; write https://..."
    if scheme in _NEVER:
        return f"must not use the {scheme}: scheme"
    if "@" in parts.netloc:
        return "must not contain user information (user@)"
    if "token" in dict(parse_qsl(parts.query, keep_blank_values=True)):
        return "must not have a token parameter (the link adds its own)"
    if scheme in ("http", "https"):
        host = parts.hostname
        if not host:
            return "must name a host"
        if scheme == "http" and not _is_loopback(host):
            return "must use https (http only on loopback: localhost, 127.0.0.1, [::1])"
        if port == 0:
            return "must not use port 0"
    elif not (parts.netloc or parts.path.strip("/")):
        return "must have a path after the scheme (e.g. com.example.app:/reset)"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
