"""IndexedRouter answers every request as Starlette's router does (oneauth.http.dispatch)."""

from __future__ import annotations

import itertools

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Host, Mount, Route, Router

from oneauth.asgi import app_routes
from oneauth.http.dispatch import IndexedRouter, build_index


def _named(name: str) -> Route:
    async def endpoint(request: Request) -> PlainTextResponse:
        params = ",".join(f"{k}={v}" for k, v in sorted(request.path_params.items()))
        return PlainTextResponse(f"{name} {params} {request.scope.get('root_path', '')}")

    return endpoint  # type: ignore[return-value]


def _path(route: BaseRoute) -> str:
    assert isinstance(route, Route)
    return route.path


def _routes() -> list[BaseRoute]:
    inner = [Route("/token", _named("inner-token"), methods=["POST"])]
    return [
        Route("/v1/me", _named("me-post"), methods=["POST"]),
        Route("/v1/{what}", _named("param"), methods=["GET"]),  # before /v1/me: wins GET
        Route("/v1/me", _named("me-get"), methods=["GET", "DELETE"]),
        Mount("/m", routes=inner),
        Route("/m/token", _named("shadowed"), methods=["POST"]),  # the mount wins
        Route("/plain", _named("plain")),  # GET and HEAD
        Route("/plain", _named("plain-put"), methods=["PUT"]),
        Route("/late", _named("late"), methods=["PATCH"]),
    ]


REQUESTS = list(
    itertools.product(
        ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
        ["/v1/me", "/v1/x", "/m/token", "/m/other", "/plain", "/plain/", "/late", "/nope", "/"],
    )
)


async def _answers(router: Router) -> list[tuple[int, str, str | None]]:
    transport = httpx.ASGITransport(app=router)
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for method, path in REQUESTS:
            r = await http.request(method, path)
            out.append((r.status_code, r.text, r.headers.get("allow")))
    return out


@pytest.mark.parametrize("redirect_slashes", [True, False])
async def test_same_answer_as_starlette_for_every_method_and_path(redirect_slashes: bool) -> None:
    ours = IndexedRouter(_routes(), redirect_slashes=redirect_slashes)
    theirs = Router(routes=_routes(), redirect_slashes=redirect_slashes)
    assert build_index(ours.routes)  # the fast path is in use
    assert await _answers(ours) == await _answers(theirs)


async def test_the_index_picks_starlettes_winner() -> None:
    index = build_index(_routes())
    assert ("/v1/me", "GET") in index
    assert _path(index["/v1/me", "GET"]) == "/v1/{what}"
    assert isinstance(index["/m/token", "POST"], Mount)
    assert _path(index["/plain", "HEAD"]) == "/plain"


async def test_a_route_list_changed_later_is_indexed_again() -> None:
    ours = IndexedRouter(_routes())
    before = await _answers(ours)
    ours.routes.insert(0, Route("/late", _named("earlier"), methods=["PATCH"]))
    theirs = Router(routes=ours.routes)
    after = await _answers(ours)
    assert after != before
    assert after == await _answers(theirs)


async def test_a_router_with_a_host_route_never_uses_the_index() -> None:
    routes = [Host("a.example", app=Router(routes=_routes())), *_routes()]
    assert build_index(routes) == {}
    assert await _answers(IndexedRouter(routes)) == await _answers(Router(routes=routes))


def test_every_static_route_of_an_app_is_indexed() -> None:
    # The app routers (under /apps/{app_id} and /platform) are IndexedRouters; each
    # static path and method of theirs is found by one lookup.
    routes = app_routes()
    index = build_index(routes)
    static = {
        (r.path, m)
        for r in routes
        if isinstance(r, Route) and not r.param_convertors
        for m in r.methods or ()
    }
    assert static
    assert static <= index.keys()
    assert _path(index["/oauth/token", "POST"]) == "/oauth/token"
