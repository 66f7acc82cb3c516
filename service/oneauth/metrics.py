"""Prometheus metrics: every metric object, the request middleware and ``GET /metrics``.

No metric carries an app label: with 10,000 apps each label value is a series
in every scrape (per-app figures belong to the admin API). Labels are drawn
from small closed sets (route templates, grant types, error codes), so an
attacker cannot grow the series count with made-up paths or parameters.

Several uvicorn workers: ``oneauth serve --workers N`` gives them one fresh
directory in ``PROMETHEUS_MULTIPROC_DIR`` before they start (cli/serve.py);
prometheus_client then keeps each process's values in memory-mapped files
there, and whichever worker answers ``/metrics`` sums them all. The variable
must be set before this module is first imported in a worker, which the spawn
of a fresh interpreter guarantees.

The instrumented code calls ``.inc()`` / ``.observe()`` on children bound
once (at import or per route), so a request costs two dictionary lookups, a
counter increment and a histogram observation.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oneauth.db.naming import names_for

# Halves the text; rates need no _created series.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# Latency: most routes answer in a few ms, a password hash takes ~50-500 ms.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "oneauth_http_requests",
    "HTTP requests by route template, method and status.",
    ("route", "method", "status"),
)
REQUEST_SECONDS = Histogram(
    "oneauth_http_request_duration_seconds",
    "Time from the request to the end of the response, by route template, method and status.",
    ("route", "method", "status"),
    buckets=_LATENCY_BUCKETS,
)
TOKEN_GRANTS = Counter(
    "oneauth_token_grants",
    "Token endpoint requests by grant type and outcome (success or the OAuth error code).",
    ("grant_type", "outcome"),
)
LOGINS = Counter(
    "oneauth_logins",
    "Password sign-ins (API and hosted page) by outcome: success, failure or throttled.",
    ("outcome",),
)
THROTTLE_HITS = Counter(
    "oneauth_throttle_hits",
    "Attempts refused by a throttle, by kind (login: password guesses; mail: messages;"
    " passkey: passwordless sign-ins begun by one IP).",
    ("kind",),
)
REGISTRY_LOOKUPS = Counter(
    "oneauth_registry_lookups",
    "App registry lookups by result: hit (in-process cache) or miss (a query).",
    ("result",),
)
POOL_ACQUIRE_TIMEOUTS = Counter(
    "oneauth_pool_acquire_timeouts",
    "Units of work refused with 503 because no app connection came within the bound.",
)
POOL_WAIT_SECONDS = Histogram(
    "oneauth_pool_wait_seconds",
    "Time a unit of work queued for an app connection (only units that found none free).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

LOGIN_SUCCESS = LOGINS.labels("success")
LOGIN_FAILURE = LOGINS.labels("failure")
LOGIN_THROTTLED = LOGINS.labels("throttled")
THROTTLE_LOGIN = THROTTLE_HITS.labels("login")
THROTTLE_MAIL = THROTTLE_HITS.labels("mail")
THROTTLE_PASSKEY = THROTTLE_HITS.labels("passkey")
REGISTRY_HIT = REGISTRY_LOOKUPS.labels("hit")
REGISTRY_MISS = REGISTRY_LOOKUPS.labels("miss")

GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
    }
)


def count_grant(grant_type: str | None, outcome: str) -> None:
    """One token request; unknown grant types and codes collapse to one label each."""
    TOKEN_GRANTS.labels(
        grant_type if grant_type in GRANT_TYPES else "other",
        outcome if outcome == "success" or outcome in OAUTH_ERRORS else "other",
    ).inc()


# --- route templates ---------------------------------------------------------------

UNMATCHED = "unmatched"  # every path no route serves: one series, not one per path
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTemplates:
    """Path -> the template of the route serving it (``/apps/{app_id}/oauth/token``).

    Matched here rather than read back from Starlette's routing: the scope
    carries the endpoint, not the route, and the same endpoint can serve two
    paths. Static paths are one dictionary lookup; only the few routes with
    parameters are tried by regular expression.
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._static: dict[str, str] = {}
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        self._mounts: list[tuple[re.Pattern[str], str, RouteTemplates]] = []
        for route in routes:
            if isinstance(route, Mount):
                inner = getattr(route.app, "app", route.app)  # AppGate(Router)
                inner_routes: list[BaseRoute] = getattr(inner, "routes", [])
                prefix = re.compile(_prefix_regex(route.path))
                self._mounts.append((prefix, route.path, RouteTemplates(inner_routes)))
            elif isinstance(route, Route):
                if route.param_convertors:
                    self._patterns.append((route.path_regex, route.path_format))
                else:
                    self._static[route.path] = route.path

    def template(self, path: str) -> str:
        found = self._static.get(path)
        if found is not None:
            return found
        for regex, template in self._patterns:
            if regex.match(path):
                return template
        for prefix, mount_path, inner in self._mounts:
            m = prefix.match(path)
            if m is not None:
                rest = inner.template(path[m.end() :])
                return UNMATCHED if rest == UNMATCHED else mount_path + rest
        return UNMATCHED


def _prefix_regex(mount_path: str) -> str:
    # "/apps/{app_id}" -> "^/apps/[^/]+(?=/)": the rest keeps its leading slash.
    parts = re.split(r"(\{[^}]+\})", mount_path)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return "^" + body + "(?=/)"


class RequestMetrics:
    """Plain ASGI middleware: count and time every HTTP request by route template."""

    def __init__(self, app: ASGIApp, templates: RouteTemplates) -> None:
        self.app = app
        self.templates = templates
        # (template, method, status) -> bound children; bounded by the route table.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception before the response starts becomes a 500 outside

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"]
        if method not in _METHODS:
            method = "other"  # made-up methods must not grow the cache below either
        key = (self.templates.template(scope["path"]), method, status)
        children = self._children.get(key)
        if children is None:
            labels = (key[0], method, str(status))
            children = (REQUESTS.labels(*labels), REQUEST_SECONDS.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


# --- the outbox gauges ---------------------------------------------------------------

# From control data only (never entering an app's schema): the mail worker's
# shared sweep state and the outbox tables' write counters in the statistics
# system, the two things its sweep reads (see oneauth.mail.worker). Three
# queries of one row per app, at most once per OUTBOX_CACHE_SECONDS.
_OUTBOX_CHANGES = (
    "SELECT n.nspname AS schema_name, pg_stat_get_tuples_inserted(c.oid)"
    " + pg_stat_get_tuples_updated(c.oid) + pg_stat_get_tuples_deleted(c.oid) AS changes"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relname = 'outbox' AND c.relkind IN ('r', 'p')"
)
_ACTIVE_APPS = "SELECT app_id, role_namespace FROM oneauth.apps WHERE status = 'active'"
_SWEEP_STATE = (
    "SELECT app_id, changes, next_due_at IS NOT NULL AS waiting,"
    " extract(epoch FROM now() - next_due_at)::float8 AS overdue FROM oneauth.mail_sweep"
)
# A scrape flood costs one read per 10 s per process (~30 ms at 10,000 apps);
# the statistics it reads are themselves flushed about every 10 s.
OUTBOX_CACHE_SECONDS = 10.0
OUTBOX_TIMEOUT_SECONDS = 2.0


class OutboxGauges(Collector):
    """Mail waiting across all apps, read at scrape time from one bounded query."""

    def __init__(self) -> None:
        self._at = -OUTBOX_CACHE_SECONDS
        self._values: tuple[float, float, float] | None = None
        self._lock = asyncio.Lock()

    async def refresh(self, pool: Any) -> None:
        async with self._lock:
            if time.monotonic() - self._at < OUTBOX_CACHE_SECONDS:
                return
            try:
                changes, apps, state = await asyncio.wait_for(
                    _outbox_reads(pool), OUTBOX_TIMEOUT_SECONDS
                )
            except Exception:  # the database is away or slow: /metrics still answers
                self._values = None
            else:
                self._values = _outbox_figures(changes, apps, state)
            self._at = time.monotonic()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self._values is None:
            return []
        unvisited, waiting, overdue = self._values
        return [
            GaugeMetricFamily(
                "oneauth_outbox_unswept_apps",
                "Apps whose outbox was written since a mail worker's sweep last recorded it: "
                "an upper bound of the apps with new mail (a notice usually delivers it "
                "sooner; a delivered app counts until the next sweep sees it at rest).",
                value=unvisited,
            ),
            GaugeMetricFamily(
                "oneauth_outbox_retry_apps",
                "Apps with mail waiting for a later attempt, as the last visit found them.",
                value=waiting,
            ),
            GaugeMetricFamily(
                "oneauth_outbox_lag_seconds",
                "How long the most overdue app's next attempt has been due (0: none overdue).",
                value=overdue,
            ),
        ]


async def _outbox_reads(pool: Any) -> tuple[dict[str, int], list[Any], dict[str, Any]]:
    async with pool.acquire() as conn:
        changes = {r[0]: r[1] for r in await conn.fetch(_OUTBOX_CHANGES)}
        apps = list(await conn.fetch(_ACTIVE_APPS))
        state = {r[0]: r for r in await conn.fetch(_SWEEP_STATE)}
    return changes, apps, state


def _outbox_figures(
    changes: dict[str, int], apps: Iterable[Any], state: dict[str, Any]
) -> tuple[float, float, float]:
    unvisited = waiting = 0
    overdue = 0.0
    for app_id, namespace in apps:
        current = changes.get(names_for(app_id, namespace).schema, 0)
        seen = state.get(app_id)
        if seen is None:
            unvisited += current > 0  # written, never recorded by a sweep
            continue
        unvisited += seen["changes"] != current
        if seen["waiting"]:
            waiting += 1
            overdue = max(overdue, seen["overdue"])
    return float(unvisited), float(waiting), overdue


OUTBOX = OutboxGauges()


# --- GET /metrics -----------------------------------------------------------------------


def _exposition(outbox: Collector) -> bytes:
    extra = CollectorRegistry(auto_describe=False)
    extra.register(outbox)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker's files, summed: whichever worker answers tells the total.
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(
            extra
        )
    return prometheus_client.generate_latest() + prometheus_client.generate_latest(extra)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format. Counts only: no app, user, address or token appears."""
    services = getattr(request.app.state, "services", None)
    if services is not None:
        await OUTBOX.refresh(services.pool)
    # Reading the workers' files is blocking I/O: off the event loop.
    body = await asyncio.to_thread(_exposition, OUTBOX)
    return Response(body, media_type=prometheus_client.CONTENT_TYPE_LATEST)
