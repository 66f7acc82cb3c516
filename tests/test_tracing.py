"""Optional OpenTelemetry tracing (issue 11): spans for HTTP requests and asyncpg queries.

The SDK exports into memory here instead of to an OTLP collector; everything
else (the ASGI middleware, the asyncpg patch, the route-template span names,
what is hidden from the tracer) is what ``ONEAUTH_OTLP_ENDPOINT`` turns on.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from apiclient import login, signup
from oneauth import tracing
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.settings import Settings

sdk_trace = pytest.importorskip(
    "opentelemetry.sdk.trace", reason="the [tracing] extra is not installed"
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)


async def test_requests_and_queries_are_spans_without_secrets(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app_record = provision()
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service = create_app(settings, configure_logging=False)
    tracing.instrument(service, service.state.route_templates, provider)
    try:
        async with service.router.lifespan_context(service):
            transport = httpx.ASGITransport(app=service, client=("198.51.100.7", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                await signup(c, app_record.app_id, "traced@example.com")
                assert (await login(c, app_record.app_id, "traced@example.com")).status_code == 200
                # A secret in a query string must not reach a span.
                r = await c.get(
                    f"/apps/{app_record.app_id}/v1/app",
                    params={"token": "query-secret-123", "email": "q@example.com"},
                )
                assert r.status_code == 200
    finally:
        tracing.uninstrument()
        provider.shutdown()
    spans = exporter.get_finished_spans()
    names = {s.name for s in spans}
    assert "POST /apps/{app_id}/v1/login" in names
    assert "GET /apps/{app_id}/v1/app" in names
    http = next(s for s in spans if s.name == "GET /apps/{app_id}/v1/app")
    assert http.attributes is not None
    assert http.attributes["http.route"] == "/apps/{app_id}/v1/app"
    queries = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert queries, names
    # The login's queries are children of its request span.
    login_span = next(s for s in spans if s.name == "POST /apps/{app_id}/v1/login")
    assert login_span.context is not None
    assert any(
        q.parent is not None and q.parent.trace_id == login_span.context.trace_id for q in queries
    )
    everything = repr([(s.name, dict(s.attributes or {})) for s in spans])
    secrets = ("traced@example.com", "query-secret-123", "q@example.com", "198.51.100.7")
    for secret in (*secrets, app_record.app_id):  # A4: not the app id either
        assert secret not in everything
    assert "violet-Harbor" not in everything  # the password


def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing.endpoint(Settings(env="test")) == ""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert tracing.endpoint(Settings(env="test")) == "http://collector:4318/v1/traces"
    own = Settings(env="test", otlp_endpoint="http://c:4318/v1/traces")
    assert tracing.endpoint(own) == "http://c:4318/v1/traces"


def test_an_otlp_endpoint_builds_a_batching_exporter() -> None:
    provider = tracing.otlp_provider("http://127.0.0.1:9/v1/traces")
    try:
        assert isinstance(provider, sdk_trace.TracerProvider)
    finally:
        provider.shutdown()
