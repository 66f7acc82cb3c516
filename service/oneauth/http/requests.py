"""Reading requests safely: size-capped JSON and forms, bearer tokens, client metadata.

Bodies are decoded here and nowhere else (I1): JSON through the bounded loader
of :mod:`oneauth.untrusted` (depth, NUL, lone surrogates, number range), forms
with the same text check on every name and value. The URL and the headers are
checked once per request by :class:`oneauth.http.middleware.InputGuard`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from oneauth.audit import RequestMeta
from oneauth.errors import InvalidJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from oneauth.untrusted import UntrustedInput, loads, text_problem

MAX_BODY = 64 * 1024


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, limit: int = MAX_BODY) -> dict[str, Any]:
    """The body as a JSON object; clear errors for the wrong type, size or syntax."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    raw = await _body(request, limit)
    try:
        data = loads(raw)
    except UntrustedInput as exc:
        if exc.syntax:
            raise InvalidJson(f"the request body is {_as_detail(exc.reason)}") from None
        extra = {"field": exc.field} if exc.field else None
        raise ValidationFailed(exc.reason, extra=extra) from None
    if not isinstance(data, dict):
        raise InvalidJson("the request body must be a JSON object")
    return data


async def read_form(request: Request, *, limit: int = MAX_BODY) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (RFC 6749 section 3.2).

    A parameter sent twice is an error (RFC 6749 section 3.1), not a silent pick.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("send the body as application/x-www-form-urlencoded")
    return parse_form(await _body(request, limit))


def parse_form(raw: bytes) -> dict[str, str]:
    """The pairs of a form body, each name and value checked as text; a name given
    twice is refused."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ValidationFailed("the form is not valid UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if text_problem(key) is not None:
            raise ValidationFailed(f"a parameter name {text_problem(key)}")
        problem = text_problem(value)
        if problem is not None:
            raise ValidationFailed(f"{key} {problem}", extra={"field": key})
        if key in form:
            raise ValidationFailed(
                f"parameter {key!r} was sent more than once", extra={"field": key}
            )
        form[key] = value
    return form


def _as_detail(reason: str) -> str:
    return reason if reason.startswith("not ") else f"not usable JSON: {reason}"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def client_ip(request: Request) -> str | None:
    # Derived once by the ClientAddress middleware: the peer, or the forwarded
    # client behind ONEAUTH_TRUSTED_PROXIES. uvicorn's own proxy handling is off.
    state = request.scope.get("state")
    if isinstance(state, dict) and "client_ip" in state:
        value = state["client_ip"]
        return value if isinstance(value, str) else None
    return request.client.host if request.client else None


def ip_hash(key: bytes, app_id: str, ip: str | None) -> str | None:
    """A keyed hash of the IP, per app: lets the audit log and throttles correlate
    without storing addresses, and is useless outside this deployment."""
    if ip is None:
        return None
    return hmac.new(key, f"{app_id}|{ip}".encode(), hashlib.sha256).hexdigest()[:32]


def request_meta(request: Request, app_id: str, key: bytes) -> RequestMeta:
    ip = client_ip(request)
    state = request.scope.get("state", {})
    request_id = state.get("request_id") if isinstance(state, dict) else None
    return RequestMeta(
        request_id=request_id,
        ip=ip,
        ip_hash=ip_hash(key, app_id, ip),
        user_agent=request.headers.get("user-agent"),
    )
