"""Optional OpenTelemetry tracing: a span per HTTP request and per asyncpg query.

On only when an OTLP endpoint is configured (``ONEAUTH_OTLP_ENDPOINT``, else
the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``); the packages come with the
``[tracing]`` extra and are imported here only then, so the base install and
its start-up stay light.

What a span may carry: the route template (``/apps/{app_id}/oauth/token``)
names HTTP spans and stands for the path in their URL attributes (A4: no
app id in a span); the query string and the client address are hidden from the
instrumentation (authorization codes, one-time tokens and emails travel in
query strings on some routes; addresses are personal data, hashed elsewhere),
and asyncpg spans hold the SQL text, whose values are always bind parameters,
never captured.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from oneauth.metrics import RouteTemplates
from oneauth.settings import Settings

_HIDDEN = "oneauth.tracing.hidden"
_ROUTE = "oneauth.tracing.route"


def endpoint(settings: Settings) -> str:
    """The traces endpoint, or "" when tracing is off."""
    if settings.otlp_endpoint:
        return settings.otlp_endpoint
    base = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    if base:
        return base
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    return base.rstrip("/") + "/v1/traces" if base else ""


def otlp_provider(url: str) -> Any:
    """A tracer provider that batches spans to an OTLP/HTTP collector."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "ONEAUTH_OTLP_ENDPOINT is set but the tracing packages are missing: "
            "pip install 'oneauth[tracing]'"
        ) from exc
    # process.pid tells the workers of `oneauth serve --workers N` apart (each one
    # builds its own provider and exporter after uvicorn starts it).
    resource = Resource.create({"service.name": "oneauth", "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return provider


def instrument(app: Starlette, templates: RouteTemplates, provider: Any) -> None:
    """Trace ``app``'s requests and every asyncpg query of this process into ``provider``."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    def span_details(scope: Scope) -> tuple[str, dict[str, str]]:
        route = scope.get(_ROUTE) or templates.template(scope.get("path", ""))
        return f"{scope.get('method', 'HTTP')} {route}", {"http.route": route}

    # Process-wide (it patches asyncpg); a second call is a no-op.
    AsyncPGInstrumentor().instrument(  # type: ignore[no-untyped-call]
        tracer_provider=provider
    )
    # add_middleware puts each one outermost: Hide, then the tracer, then Restore.
    app.add_middleware(_Restore)
    app.add_middleware(
        OpenTelemetryMiddleware,
        default_span_details=span_details,
        tracer_provider=provider,
        exclude_spans=["receive", "send"],
    )
    app.add_middleware(_Hide, templates=templates)


def uninstrument() -> None:
    """Take the asyncpg patch back (tests: the rest of the process runs untraced)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]


class _Hide:
    """Keep the query string, the client address and the path's own values (the
    app id, a client id) out of the tracer's sight: it sees the route template."""

    def __init__(self, app: ASGIApp, templates: RouteTemplates) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            scope[_HIDDEN] = (
                scope.get("query_string", b""),
                scope.get("client"),
                path,
                scope.get("raw_path"),
            )
            route = scope[_ROUTE] = self.templates.template(path)
            scope["query_string"] = b""
            scope["client"] = None
            scope["path"] = route
            scope["raw_path"] = route.encode()
        await self.app(scope, receive, send)


class _Restore:
    """Give the application back what ``_Hide`` took, once the span has started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hidden = scope.pop(_HIDDEN, None)
        if hidden is not None:
            scope["query_string"], scope["client"], scope["path"], scope["raw_path"] = hidden
        await self.app(scope, receive, send)
