"""A Starlette router that finds a static path's route with one dictionary lookup.

Starlette tries every route in order, a regular expression each. An app's
router holds ~150 routes and the token endpoint is the 37th: routing was ~8 %
of the service's CPU per client_credentials grant (py-spy). ``IndexedRouter``
answers exactly as Starlette's router does, only sooner:

- For each path without parameters and each of its methods, the route that
  Starlette's own scan would pick (the first full match, whatever its kind) is
  found once, by running that scan on a request of that path and method.
- A request whose (path, method) is in the index goes to that route after the
  route itself has matched the request again (its ``matches`` builds the child
  scope, as in the scan). Anything else (parameters, another method: a 405,
  unknown paths, websockets) takes Starlette's scan unchanged.

The index is valid while the route list is the one it was built from (checked
on every request by identity and length), and only for routes whose match
depends on path, root path, method and type alone: plain ``Route`` and
``Mount``. A router holding anything else (a ``Host``, a custom route) never
uses the index.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import Receive, Scope, Send

__all__ = ["IndexedRouter"]


def _indexable(route: BaseRoute) -> bool:
    # Exact types: a subclass may match on more than path and method.
    return type(route) in (Route, Mount)


def _first_full(routes: list[BaseRoute], path: str, method: str) -> int | None:
    probe: Scope = {"type": "http", "path": path, "root_path": "", "method": method}
    for i, route in enumerate(routes):
        match, _ = route.matches(probe)
        if match == Match.FULL:
            return i
    return None


def build_index(routes: list[BaseRoute]) -> dict[tuple[str, str], BaseRoute]:
    """(path, method) -> the route Starlette's scan picks, for static paths."""
    if not all(_indexable(r) for r in routes):
        return {}
    index: dict[tuple[str, str], BaseRoute] = {}
    for route in routes:
        if not isinstance(route, Route) or route.param_convertors or route.methods is None:
            continue
        for method in route.methods:
            key = (route.path, method)
            if key not in index:
                winner = _first_full(routes, *key)
                if winner is not None:
                    index[key] = routes[winner]
    return index


class IndexedRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], *, redirect_slashes: bool = True) -> None:
        super().__init__(routes=routes, redirect_slashes=redirect_slashes)
        self._indexed: tuple[int, int] = (0, -1)  # (id, len) of the routes indexed
        self._index: dict[tuple[str, str], BaseRoute] = {}

    def _current_index(self) -> dict[tuple[str, str], BaseRoute]:
        shape = (id(self.routes), len(self.routes))
        if shape != self._indexed:
            self._index = build_index(self.routes)
            self._indexed = shape
        return self._index

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._current_index().get((get_route_path(scope), scope["method"]))
            if route is not None:
                match, child_scope = route.matches(scope)
                if match == Match.FULL:
                    scope.setdefault("router", self)
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await super().app(scope, receive, send)
