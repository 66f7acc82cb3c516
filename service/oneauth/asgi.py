"""``create_app(settings)``: lifespan, middleware order, mounts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette import routing
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from oneauth import logs
from oneauth.apps.registry import Registry
from oneauth.db.bootstrap import describe_unsafe
from oneauth.db.pool import create_pool
from oneauth.db.router import Router
from oneauth.http import health
from oneauth.http.gate import AppGate, current_app
from oneauth.http.middleware import RequestContext
from oneauth.http.problems import exception_handlers
from oneauth.services import Services
from oneauth.settings import Settings


async def app_info(request: Request) -> Response:
    """Public facts about an app: id, display name and issuer."""
    app = current_app(request)
    settings = Services.of(request).settings
    return JSONResponse(
        {
            "app_id": app.app_id,
            "display_name": app.display_name,
            "issuer": settings.issuer_for(app.app_id),
        }
    )


def app_routes() -> list[BaseRoute]:
    return [Route("/v1/app", app_info, methods=["GET"])]


def create_app(settings: Settings | None = None, *, configure_logging: bool = True) -> Starlette:
    settings = settings or Settings.from_env()
    if configure_logging:
        logs.configure(settings.log_format, settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        try:
            row = await pool.fetchrow(
                "SELECT rolsuper, rolinherit FROM pg_roles WHERE rolname = current_user"
            )
            assert row is not None
            describe_unsafe(bool(row["rolsuper"]), bool(row["rolinherit"]))
            registry = Registry(pool, ttl=settings.registry_cache_ttl)
            await registry.start_listening(settings.database_url)
            router = Router(
                pool, registry, max_apps_per_connection=settings.pool_max_apps_per_connection
            )
            app.state.services = Services(settings, pool, registry, router)
            try:
                yield
            finally:
                await registry.stop_listening()
        finally:
            await pool.close()

    routes: list[BaseRoute] = [
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Mount("/apps/{app_id}", app=AppGate(routing.Router(routes=app_routes()))),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestContext)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
