"""Every public route, thrown generated input: never a 5xx, errors in the route's format (I1).

The routes are read from the real Starlette app (``create_app``), walking every
``Mount`` down to its router, so a route added tomorrow is fuzzed without
touching this file; a mount whose routes cannot be found fails the collection
instead of being skipped. Each route gets random JSON (nested, NUL, lone
surrogates, huge numbers, wrong types), forms, raw bytes, query strings, path
parameter values and headers (Bearer tokens made of junk or nested-JSON JOSE
segments, Basic credentials with NUL).

Deterministic (``derandomize=True``, no example database) and bounded:
``FUZZ_EXAMPLES`` examples per route and method (default 15; set
``FUZZ_EXAMPLES`` higher for a longer local run).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from apiclient import default_client_id, signup
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.settings import Settings

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
# Hosted pages answer their errors as HTML pages for the user, not as JSON.
PAGE_MODULES = frozenset(
    {
        "oneauth.web.pages",
        "oneauth.web.recovery_pages",
        "oneauth.web.passkey_pages",
        "oneauth.web.signin",
        "oneauth.web.registration",
        "oneauth.web.account",
        "oneauth.web.invitations",
        "oneauth.web.federation_pages",
        "oneauth.oauth.logout",
        "oneauth.console.views",  # the admin console (issue 15)
    }
)
SAFETY_NET = "the request contains a value that cannot be stored"
HOSTS = [b"testserver", b"testserver", b"evil.example", b"evil.example:8443"]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {param} placeholders, mount prefixes included
    module: str

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)


def _routes_of(app: ASGIApp) -> list[BaseRoute]:
    # A Mount may wrap its router in plain ASGI layers (the app gate): unwrap them.
    seen = app
    while not hasattr(seen, "routes"):
        inner = getattr(seen, "app", None)
        if inner is None:
            raise AssertionError(f"cannot find the routes behind {app!r}: fuzz it explicitly")
        seen = inner
    routes: list[BaseRoute] = seen.routes
    return routes


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[Endpoint]:
    for route in routes:
        if isinstance(route, Mount):
            if getattr(route.app, "pinned", None) is not None:
                # /platform: the per-app routes again, behind a gate pinned to the
                # control-plane app; fuzzed (and documented) as /apps/{app_id}.
                continue
            inner = _routes_of(route.app)
            assert inner, f"mount {prefix}{route.path} has no routes"
            yield from _walk(inner, prefix + route.path)
        elif isinstance(route, Route):
            assert route.methods, f"{prefix}{route.path} accepts every method: list them"
            module = getattr(route.endpoint, "__module__", "")
            for method in sorted(route.methods):
                yield Endpoint(method, prefix + route.path, module)
        else:
            raise AssertionError(f"unknown route type {type(route).__name__}: fuzz it explicitly")


ENDPOINTS = sorted(
    _walk(create_app(Settings(env="test"), configure_logging=False).routes),
    key=lambda e: (e.path, e.method),
)


def test_the_walk_finds_the_routes_of_every_layer() -> None:
    paths = {e.path for e in ENDPOINTS}
    for expected in ("/healthz", "/apps/{app_id}/v1/login", "/apps/{app_id}/oauth/token"):
        assert expected in paths
    assert "/apps/{app_id}/v1/consents/{client_id}" in paths
    assert len(paths) > 30


# --- strategies ---------------------------------------------------------------------

# Text that breaks naive code: NUL, controls, lone surrogates, invisible and bidi
# characters, URL syntax. A request is mostly well formed (the right app, a
# known field, a plausible value) with one nasty part, so it gets past the
# first checks and reaches the code behind them.
_NASTY = st.sampled_from(
    ["\x00", "\ud800", "\udfff", "\u200b", "\u202e", "\ufeff", "%00", "%", "/", "..", "@", ","]
)
PLAUSIBLE = st.sampled_from(
    [
        "a@example.com", "violet-Harbor-lantern-42", "cl_x", "https://rp.example.com/cb",
        "openid email", "code", "S256", "x" * 43, "authorization_code", "refresh_token",
        "client_credentials", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "",
    ]
)  # fmt: skip


def _insert(parts: tuple[str, str, int]) -> str:
    text, nasty, at = parts
    at %= len(text) + 1
    return text[:at] + nasty + text[at:]


TEXT = st.one_of(
    PLAUSIBLE,
    st.tuples(PLAUSIBLE, _NASTY, st.integers(0, 60)).map(_insert),
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(["x" * 5000, "a@" + "b" * 300 + ".com"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from([10**30, -(10**30)]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "email", "password", "new_password", "current_password", "token", "flow_token", "code",
        "redirect_uri", "client_id", "client_secret", "grant_type", "refresh_token", "scope",
        "state", "flow", "csrf_token", "client_assertion", "client_assertion_type",
        "id_token_hint", "post_logout_redirect_uri", "response_type", "code_challenge",
        "code_challenge_method", "code_verifier", "nonce", "prompt", "decision", "new_email",
        "method", "access_token", "login_hint", "max_age",
    ]
)  # fmt: skip
KEYS = st.one_of(FIELDS, FIELDS, FIELDS, TEXT)


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


JOSE_SEGMENTS = st.one_of(
    DOCUMENTS.map(lambda d: _b64(_raw(json.dumps(d)))),
    st.integers(1, 3000).map(lambda n: _b64(_nested(n))),
    st.integers(1, 2000).map(lambda n: _b64(b'{"alg":"ES256","kid":"k1","x":' + _nested(n) + b"}")),
    st.binary(max_size=30).map(_b64),
    TEXT.map(lambda t: t.encode("ascii", "ignore").decode()),
)
JWTS = st.builds(lambda h, p, s: f"{h}.{p}.{s}", JOSE_SEGMENTS, JOSE_SEGMENTS, JOSE_SEGMENTS)
VALUES = st.one_of(TEXT, TEXT, TEXT, JWTS, DOCUMENTS)
AUTHORIZATION = st.one_of(
    st.none(),
    JWTS.map(lambda t: b"Bearer " + t.encode()),
    st.binary(max_size=60).map(lambda b: b"Bearer " + b),
    st.binary(max_size=40).map(lambda b: b"Basic " + base64.b64encode(b)),
    st.tuples(TEXT, TEXT).map(
        lambda p: b"Basic " + base64.b64encode(_raw(p[0]) + b":" + _raw(p[1]))
    ),
    st.sampled_from([b"Basic", b"Bearer", b"Basic %%%", b"Negotiate x"]),
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        b"application/json",
        b"application/x-www-form-urlencoded",
        b"text/plain",
        b"application/json; charset=latin-1",
        b"multipart/form-data; boundary=x",
    ]
)


def _form(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode([(_raw(k), _raw(v)) for k, v in pairs]).encode()


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes | None, bytes]:
    """(content type, body): typed or mistyped, well-formed or not."""
    kind = draw(st.sampled_from(["json", "json", "form", "form", "nested", "none", "raw"]))
    if kind == "none":
        return draw(CONTENT_TYPES), b""
    if kind == "json":
        doc = draw(st.one_of(st.dictionaries(KEYS, VALUES, max_size=5), DOCUMENTS))
        return b"application/json", _raw(json.dumps(doc))
    if kind == "nested":
        depth = draw(st.integers(1, 60_000))
        opener = draw(st.sampled_from([b"[", b'{"email":', b'{"a":[']))
        return b"application/json", (opener * depth)[: 60 * 1024]
    if kind == "form":
        pairs = draw(st.lists(st.tuples(KEYS, VALUES.map(_as_text)), max_size=6))
        return b"application/x-www-form-urlencoded", _form(pairs)
    return draw(CONTENT_TYPES), draw(st.binary(max_size=200))


@dataclass(frozen=True)
class Target:
    app_id: str
    client_id: str
    access_token: str


def mostly(value: str, other: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``value`` four times in five, else something from ``other``."""
    return st.integers(0, 4).flatmap(lambda i: st.just(value) if i else other)


@st.composite
def fuzz_requests(draw: st.DrawFn, endpoint: Endpoint, target: Target) -> httpx.Request:
    values = {
        "app_id": draw(mostly(target.app_id, st.just("no-such-app") | TEXT)),
        "client_id": draw(st.sampled_from([target.client_id]) | TEXT),
    }
    path = endpoint.path
    for param in endpoint.params:
        encoded = quote(_raw(values.get(param) or draw(TEXT)), safe="")
        path = re.sub(r"\{" + param + r"(?::\w+)?\}", encoded.replace("\\", r"\\"), path)
    if draw(st.integers(0, 5)) == 0:
        path += "/"  # Starlette's redirect_slashes answered this with a 307 to the Host header
    query = draw(st.lists(st.tuples(KEYS, VALUES.map(_as_text)), max_size=5))
    # A hostile Host: nothing may build a URL from it (the public URL is configured).
    headers: list[tuple[bytes, bytes]] = [(b"host", draw(st.sampled_from(HOSTS)))]
    token = f"Bearer {target.access_token}".encode()
    auth = draw(st.one_of(st.just(token), AUTHORIZATION))
    if auth is not None:
        headers.append((b"authorization", auth))
    content_type, body = draw(bodies())
    if content_type is not None:
        headers.append((b"content-type", content_type))
    extra = draw(st.lists(st.sampled_from([b"user-agent", b"cookie", b"origin"]), max_size=2))
    headers.extend((name, draw(st.binary(max_size=40))) for name in extra)
    url = f"http://testserver{path}" + (f"?{_form(query).decode()}" if query else "")
    return httpx.Request(endpoint.method, url, headers=headers, content=body)


# --- the property -------------------------------------------------------------------


@pytest.fixture(scope="module")
async def fuzz_target(provision: Callable[..., AppRecord], service: Any) -> Target:
    app = provision()
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        token = (await signup(http, app.app_id, "fuzz@example.com"))["access_token"]
        return Target(app.app_id, await default_client_id(http, app.app_id), token)


def check_response(endpoint: Endpoint, request: httpx.Request, response: httpx.Response) -> None:
    where = f"{request.method} {request.url!r} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    assert "evil.example" not in response.headers.get("location", ""), where
    if response.status_code < 400:
        return
    ctype = response.headers.get("content-type", "")
    if request.method == "HEAD":  # the headers of a GET, without the body
        assert ctype in ("application/problem+json", "application/json") or (
            ctype.startswith("text/html") and endpoint.module in PAGE_MODULES
        ), where
    elif ctype == "application/problem+json":
        body = response.json()
        assert body["status"] == response.status_code, where
        assert isinstance(body["code"], str), where
        # The DataError handler is a safety net: the parsers must refuse first.
        assert body["detail"] != SAFETY_NET, where
    elif ctype == "application/json" and "/oauth/" in endpoint.path:
        body = response.json()
        if body == {}:  # RFC 6750 section 3.1: no credentials, so no error code
            assert response.status_code == 401, where
            assert response.headers["www-authenticate"].startswith("Bearer "), where
        else:
            assert isinstance(body["error"], str), where  # RFC 6749 section 5.2
            assert body.get("error_description") != SAFETY_NET, where
    elif ctype.startswith("text/html") and endpoint.module in PAGE_MODULES:
        pass
    else:
        raise AssertionError(f"error in no known format ({ctype!r}): {where}")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_route_never_answers_5xx(
    endpoint: Endpoint, fuzz_target: Target, service: Any, data: st.DataObject
) -> None:
    request = data.draw(fuzz_requests(endpoint, fuzz_target), label="request")
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.send(request)
    check_response(endpoint, request, response)
