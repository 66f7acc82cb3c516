"""``create_app(settings)``: lifespan, middleware order, mounts."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import replace

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route

from oneauth import admin, logs, metrics, tracing
from oneauth.api import federation as federation_api
from oneauth.api import mfa as mfa_api
from oneauth.api import orgs as orgs_api
from oneauth.api import recovery as recovery_api
from oneauth.api import views
from oneauth.api import webauthn as webauthn_api
from oneauth.apps.dek import KeyRing, SyncLoader
from oneauth.apps.registry import CHANNEL as registry_channel
from oneauth.apps.registry import Registry
from oneauth.auditchain.sealer import Sealer
from oneauth.console import views as console_views
from oneauth.db import roles
from oneauth.db.naming import PLATFORM_APP_ID
from oneauth.db.notify import Notifier
from oneauth.db.pool import create_app_pools, create_pool
from oneauth.db.router import Router
from oneauth.http import health, openapi
from oneauth.http.contract import Operation, operation
from oneauth.http.dispatch import IndexedRouter
from oneauth.http.gate import AppGate
from oneauth.http.middleware import ClientAddress, InputGuard, RequestContext
from oneauth.http.problems import exception_handlers
from oneauth.identity.passwords import PasswordHasher
from oneauth.mail.outbox import CHANNEL as outbox_channel
from oneauth.mail.worker import DeliveryWorker
from oneauth.oauth import discovery, endpoints
from oneauth.oauth import provider as oidc_provider
from oneauth.oauth.clients import CHANNEL as clients_channel
from oneauth.oauth.clients import ClientCache
from oneauth.oauth.errors import OAuthError, oauth_error_handler
from oneauth.platform import api as platform_api
from oneauth.retention.worker import RetentionWorker
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.tokens.keystore import CHANNEL as keys_channel
from oneauth.tokens.keystore import KeyStore
from oneauth.web import federation_pages, invitations, passkey_pages, recovery_pages, signin
from oneauth.webhooks.events import DELIVERIES_CHANNEL as webhook_deliveries_channel
from oneauth.webhooks.events import ENDPOINTS_CHANNEL as webhook_endpoints_channel
from oneauth.webhooks.events import SUBSCRIPTIONS as webhook_subscriptions
from oneauth.webhooks.worker import WebhookWorker

# Declared here, not in oneauth.metrics, which the database layer imports early.
_metrics_view = operation(
    Operation(
        "Prometheus metrics (text format; no per-app or per-user data)",
        responses={200: str},
        media_type="text/plain",
        tags=("meta",),
    )
)(metrics.metrics_endpoint)


def app_routes() -> list[BaseRoute]:
    return [
        *views.routes(),
        *mfa_api.routes(),
        *recovery_api.routes(),
        *webauthn_api.routes(),
        *orgs_api.routes(),
        *endpoints.routes(),
        *discovery.routes(),
        *oidc_provider.routes(),
        *recovery_pages.routes(),
        *signin.routes(),
        *passkey_pages.routes(),
        *invitations.routes(),
        *federation_api.routes(),
        *federation_pages.routes(),
        *admin.routes(),
    ]


_frozen = False


def _freeze_startup_objects() -> None:
    """Take what exists once the service is up (modules, routes, caches, pools) out
    of the garbage collector's full passes, once per process.

    A full pass walks every tracked object: ~100,000 after start-up, 70 ms for one
    pass on the bench machine, and the event loop serves nothing meanwhile. Under
    load such passes come every few seconds. In the bench, client_credentials at
    one app (p50 6-8 ms): p99 34 and 52 ms without, 19 and 22 ms with, in four
    interleaved runs; /v1/me and introspection showed no difference beyond the
    machine's noise. Frozen objects are still freed by reference counting; only
    cycles among them wait (they are kept for the process's life anyway)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None, *, configure_logging: bool = True) -> Starlette:
    settings = settings or Settings.from_env()
    if configure_logging:
        logs.configure(settings.log_format, settings.log_level)
    mismatch = settings.public_url_mismatch()
    if mismatch is not None:
        structlog.get_logger("oneauth").warning(
            "public_url_port_mismatch",
            detail=mismatch,
            public_url=settings.public_url,
            port=settings.port,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:  # closes in reverse order
            pool = await create_pool(settings)
            stack.push_async_callback(pool.close)
            app_pools = await create_app_pools(settings)
            stack.push_async_callback(app_pools.close)
            # The shards past ONEAUTH_POOL_MIN_SIZE too, in the background: so that
            # no early request waits for a connect and a first role check.
            app_pools.open_all()
            hasher = PasswordHasher(max_workers=settings.password_hash_threads or None)
            stack.callback(hasher.close)
            # D1: refuse a login role that could do more than become app roles.
            roles.check_service_row(await pool.fetchrow(roles.SERVICE_ROLE_AUDIT_SQL))
            box = KeyRing.from_config(settings.master_key)
            box.loader = loader = SyncLoader(settings.database_url)
            stack.callback(loader.close)
            registry = Registry(pool, ttl=settings.registry_cache_ttl, keyring=box)
            keys = KeyStore(box, issuer_for=settings.issuer_for)
            clients = ClientCache()
            notifier = Notifier(
                settings.listen_url,
                enabled=settings.listen,
                fallback_ttl=settings.listen_fallback_ttl,
            )
            notifier.subscribe(registry_channel, registry.on_change, cache=True)
            # Provisioning changes role memberships: idle connections redo their role
            # check before a request needs it (AppPools.rewarm).
            notifier.subscribe(registry_channel, app_pools.rewarm)
            notifier.subscribe(keys_channel, keys.on_change, cache=True)
            notifier.subscribe(clients_channel, clients.on_change, cache=True)
            # ?wait=N on the platform API: woken by the runner's completion notices.
            app.state.platform_jobs = platform_api.JobWaiter()
            notifier.subscribe(platform_api.DONE_CHANNEL, app.state.platform_jobs.on_done)
            if settings.platform_worker:
                # `make run`: the operator-role job runner in a thread of this process.
                from oneauth.platform.runner import RunnerThread

                runner = RunnerThread(settings).start()
                stack.callback(runner.stop)
            limit = settings.pool_max_apps_per_connection
            router = Router(app_pools, registry, max_apps_per_connection=limit)
            mail_router = router
            if settings.mail_worker_inprocess:
                # Its own connections: a sweep enters many apps' schemas and
                # must not fill the request connections' catalog caches.
                mail_pools = await create_app_pools(
                    replace(settings, pool_min_size=1, pool_max_size=2, pool_shards=1)
                )
                stack.push_async_callback(mail_pools.close)
                mail_router = Router(mail_pools, registry, max_apps_per_connection=limit)
            delivery = DeliveryWorker.from_settings(settings, pool, registry, mail_router, box)
            seal_router = router
            if settings.audit_sealer_inprocess:
                # Like the mail worker's: its visits must not fill request connections' caches.
                seal_pools = await create_app_pools(
                    replace(settings, pool_min_size=1, pool_max_size=2, pool_shards=1)
                )
                stack.push_async_callback(seal_pools.close)
                seal_router = Router(seal_pools, registry, max_apps_per_connection=limit)
            sealer = Sealer.from_settings(settings, pool, registry, seal_router, keys, box)
            hooks = WebhookWorker.from_settings(settings, pool, registry, mail_router, box)
            notifier.subscribe(
                webhook_endpoints_channel, webhook_subscriptions.on_change, cache=True
            )
            if settings.mail_worker_inprocess:
                notifier.subscribe(outbox_channel, delivery.on_notify)
                notifier.subscribe(webhook_deliveries_channel, hooks.on_notify)
            await notifier.start()
            stack.push_async_callback(notifier.stop)
            app.state.services = Services(
                settings,
                pool,
                registry,
                router,
                notifier,
                keys,
                clients,
                hasher,
                box,
                delivery,
                sealer,
            )
            app.state.services.webhooks = hooks
            if settings.retention_inprocess:
                # Its own connections, like the sealer's: a cycle enters many schemas.
                keep_pools = await create_app_pools(
                    replace(settings, pool_min_size=1, pool_max_size=2, pool_shards=1)
                )
                stack.push_async_callback(keep_pools.close)
                keep_router = Router(keep_pools, registry, max_apps_per_connection=limit)
                retention = RetentionWorker.from_settings(
                    settings, pool, registry, keep_router, keys, box
                )
                app.state.services.retention = retention
                stack.push_async_callback(retention.stop)
                await retention.start()
            stack.push_async_callback(delivery.stop)
            stack.push_async_callback(sealer.stop)
            if settings.audit_sealer_inprocess:
                await sealer.start()
            stack.push_async_callback(hooks.stop)
            if settings.mail_worker_inprocess:
                await delivery.start()
                await hooks.start()
            tracer_provider = getattr(app.state, "tracer_provider", None)
            if tracer_provider is not None:
                stack.callback(tracer_provider.shutdown)  # flush the last spans
            _freeze_startup_objects()
            yield

    routes: list[BaseRoute] = [
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route(
            "/.well-known/oauth-authorization-server/apps/{app_id}",
            discovery.oauth_server_metadata,
            methods=["GET"],
        ),
        Route(
            "/.well-known/oauth-authorization-server/platform",
            discovery.oauth_server_metadata,
            methods=["GET"],
        ),
        Mount(
            "/apps/{app_id}",
            app=AppGate(IndexedRouter(app_routes(), redirect_slashes=False)),
        ),
        # The control plane: the same app routes, for the reserved app only, at
        # its own issuer {public_url}/platform (/apps/platform is 404).
        Mount(
            "/platform",
            app=AppGate(
                IndexedRouter(app_routes(), redirect_slashes=False),
                pinned=PLATFORM_APP_ID,
            ),
        ),
        *platform_api.routes(),
        # The admin console (issue 15): outside every app's gate; it reaches apps
        # only through their admin API.
        *console_views.routes(),
    ]
    if settings.metrics:
        # Top level, outside the app gate: the figures are the whole service's.
        routes.insert(2, Route("/metrics", _metrics_view, methods=["GET"]))
    templates = metrics.RouteTemplates(routes)
    app = Starlette(
        routes=routes,
        middleware=[
            # Outermost of ours: times the whole request, our middleware included.
            Middleware(metrics.RequestMetrics, templates=templates),
            Middleware(RequestContext),
            Middleware(InputGuard),
            Middleware(ClientAddress, trusted_proxies=settings.trusted_proxies),
        ],
        exception_handlers={**exception_handlers(), OAuthError: oauth_error_handler},
        lifespan=lifespan,
    )
    app.state.readiness = health.Readiness()
    # Starlette answers "/path/" with a 307 to "/path" built from the Host header,
    # i.e. to whatever host the client names. A path with a stray slash is a 404.
    app.router.redirect_slashes = False
    app.state.route_templates = templates
    endpoint = tracing.endpoint(settings)
    if endpoint:
        app.state.tracer_provider = tracing.otlp_provider(endpoint)
        tracing.instrument(app, templates, app.state.tracer_provider)
    return app
