"""The webhook delivery worker: claims delivery rows of every app and POSTs them.

Built on the mail worker's machinery (``oneauth.mail.worker.AppSweeper``): the
same wake-up scheme (``NOTIFY oneauth_webhooks, '<app_id>'`` from ``emit`` and
replays, plus the statistics-based sweep over ``webhook_deliveries`` with its
state in ``oneauth.webhook_sweep``), the same claims (``FOR UPDATE SKIP
LOCKED``, attempts + 1, a lease, committed before any HTTP traffic) so two
workers never send one row at once, at-least-once delivery (a crash after the
receiver's 2xx and before the mark sends again, with the same ``webhook-id``).

Each request (W-H2, W-H3): signed Standard Webhooks headers, short timeouts
(connect/read/write, and a cap on the whole exchange), no redirects (a 3xx is
a failure), the URL policy of ``urls`` checked again and the host resolved and
checked at send time, the connection made to the checked address. A 2xx marks
the row delivered; anything else retries with exponential backoff and jitter
up to ``max_attempts``, then the row is dead (audited ``webhook.delivery``);
a refused URL, a secret that no longer opens or a disabled endpoint is dead at
once. Dead rows can be replayed from the admin API.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

import asyncpg
import httpx
import structlog

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.registry import Registry
from oneauth.db.router import Router
from oneauth.mail.worker import AppSweeper, Report, SweepSql, WorkerConfig
from oneauth.secretbox import SecretBox, SecretBoxError
from oneauth.settings import Settings
from oneauth.webhooks import endpoints, signing, urls
from oneauth.webhooks.events import webhooks_schema_version

log = structlog.get_logger("oneauth.webhooks")

WEBHOOK_SWEEP = SweepSql("webhook_deliveries", "oneauth.webhook_sweep")
USER_AGENT = "oneauth-webhooks/1"


@dataclass
class WebhookConfig(WorkerConfig):
    batch_size: int = 50
    concurrency: int = 4  # apps delivered at once
    requests_per_app: int = 8  # requests in flight per app
    backoff_base: float = 10.0  # 10 s, 20 s, 40 s ... capped
    backoff_cap: float = 6 * 3600.0
    max_attempts: int = 10
    timeout: float = 5.0  # connect, read, write each; the whole exchange is capped at 2x
    lease_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        return cls(sweep_interval=settings.email_sweep_interval)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    event_id: str
    endpoint_id: str
    event_type: str
    body: bytes
    attempts: int
    created_at: datetime
    url: str
    secret_sealed: str
    enabled: bool
    claim_id: uuid.UUID


_CLAIM = """
WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE (status = 'pending' AND next_attempt_at <= now())
       OR (status = 'sending' AND lease_until <= now() AND attempts < $4)
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d SET status = 'sending', attempts = d.attempts + 1,
       lease_until = now() + make_interval(secs => $2), claim_id = $3
FROM due, webhook_endpoints e
WHERE d.id = due.id AND e.id = d.endpoint_id
RETURNING d.id, d.event_id, d.endpoint_id, d.event_type, d.payload::text AS body, d.attempts,
          d.created_at, e.url, e.secret_sealed, e.enabled
"""

# The last permitted attempt's worker died mid-request: outcome unknown, dead.
_RETIRE = """
UPDATE webhook_deliveries SET status = 'dead', lease_until = NULL, claim_id = NULL,
       last_error = 'worker lost the lease on the last attempt'
WHERE status = 'sending' AND lease_until <= now() AND attempts >= $1
RETURNING id, endpoint_id, event_type
"""

_MARK_DELIVERED = """
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = coalesce(delivered_at, now()),
       last_status = $2, last_error = NULL, lease_until = NULL, claim_id = NULL
WHERE id = $1 AND status <> 'delivered'
"""

_MARK_FAILED = """
UPDATE webhook_deliveries SET
    status = CASE WHEN $3::float8 IS NULL OR attempts >= $6 THEN 'dead' ELSE 'pending' END,
    next_attempt_at = now() + make_interval(secs => coalesce($3::float8, 0)),
    last_status = $4, last_error = left($5, 500), lease_until = NULL, claim_id = NULL
WHERE id = $1 AND claim_id = $2 AND status = 'sending'
RETURNING status
"""

_DUE = """
SELECT extract(epoch FROM least(
    (SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'),
    (SELECT min(lease_until) FROM webhook_deliveries WHERE status = 'sending')) - now())
"""


class _Permanent(Exception):
    """This row cannot be delivered by retrying (dead-letter now)."""


class _Transient(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class WebhookWorker(AppSweeper):
    settings: Settings
    pool: asyncpg.Pool
    registry: Registry
    router: Router
    box: SecretBox
    config: WebhookConfig = field(default_factory=WebhookConfig)

    sweep_sql: ClassVar[SweepSql] = WEBHOOK_SWEEP
    task_name: ClassVar[str] = "oneauth-webhook-worker"
    error_event: ClassVar[str] = "webhook_worker_error"

    def __post_init__(self) -> None:
        self._init_wakeup()

    def min_schema_version(self) -> int:
        return webhooks_schema_version()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        pool: asyncpg.Pool,
        registry: Registry,
        router: Router,
        box: SecretBox,
    ) -> WebhookWorker:
        return cls(settings, pool, registry, router, box, WebhookConfig.from_settings(settings))

    # --- one app ------------------------------------------------------------------

    async def deliver_app(self, app: AppRecord) -> Report:
        """Send what is due in one app, batch after batch, until nothing is due."""
        report = Report()
        cfg = self.config
        while True:
            claim_id = uuid.uuid4()
            async with self.router.enter(app) as conn:
                retired = await conn.fetch(_RETIRE, cfg.max_attempts)
                for r in retired:
                    await self._audit_dead(conn, r["id"], r["endpoint_id"], r["event_type"], None)
                rows = await conn.fetch(
                    _CLAIM,
                    cfg.batch_size,
                    max(cfg.lease_seconds, 4 * cfg.timeout),
                    claim_id,
                    cfg.max_attempts,
                )
            report.dead += len(retired)
            claimed = [
                Claimed(
                    id=r["id"],
                    event_id=r["event_id"],
                    endpoint_id=r["endpoint_id"],
                    event_type=r["event_type"],
                    body=r["body"].encode(),
                    attempts=r["attempts"],
                    created_at=r["created_at"],
                    url=r["url"],
                    secret_sealed=r["secret_sealed"],
                    enabled=r["enabled"],
                    claim_id=claim_id,
                )
                for r in rows
            ]
            if claimed:
                await self._send_batch(app, claimed, report)
            if len(rows) < cfg.batch_size:
                break
        async with self.router.enter(app) as conn:
            value = await conn.fetchval(_DUE)
        report.next_due = None if value is None else max(0.0, float(value))
        if report.next_due is None:
            self._due.pop(app.app_id, None)
        else:
            self._due[app.app_id] = time.monotonic() + report.next_due
        return report

    async def _send_batch(self, app: AppRecord, rows: list[Claimed], report: Report) -> None:
        cfg = self.config
        limit = asyncio.Semaphore(cfg.requests_per_app)
        async with httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: we check where we connect
            timeout=httpx.Timeout(cfg.timeout),
            # No pooled connections: a connection made for one endpoint's name is
            # never reused for another endpoint that resolves to the same address.
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:

            async def one(row: Claimed) -> None:
                async with limit:
                    await self._deliver_one(client, app, row, report)

            await asyncio.gather(*(one(r) for r in rows))

    async def _deliver_one(
        self, client: httpx.AsyncClient, app: AppRecord, row: Claimed, report: Report
    ) -> None:
        try:
            status = await self._post(client, app, row)
        except _Permanent as exc:
            await self._failed(app, row, str(exc), None, None, report)
            return
        except _Transient as exc:
            retry_in = self._backoff(row.attempts)
            await self._failed(app, row, str(exc), exc.status, retry_in, report)
            return
        async with self.router.enter(app) as conn:
            await conn.execute(_MARK_DELIVERED, row.id, status)
        report.sent += 1

    async def _post(self, client: httpx.AsyncClient, app: AppRecord, row: Claimed) -> int:
        if not row.enabled:
            raise _Permanent("endpoint disabled")
        try:
            secret = endpoints.open_secret(self.box, app.app_id, row.endpoint_id, row.secret_sealed)
        except SecretBoxError:
            raise _Permanent("the endpoint secret does not open") from None
        try:
            target = await urls.resolve(self.settings, row.url)
        except urls.UrlRefused as exc:
            raise _Permanent(f"refused: {exc}") from None
        except LookupError as exc:
            raise _Transient(str(exc)) from None
        headers = {
            **signing.headers(secret, row.event_id, row.body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": target.host_header,
        }
        try:
            async with asyncio.timeout(2 * self.config.timeout):
                request = client.build_request(
                    "POST",
                    target.connect_url,
                    content=row.body,
                    headers=headers,
                    extensions={"sni_hostname": target.server_name},
                )
                response = await client.send(request, stream=True)
                await response.aclose()  # the body is not read: a receiver cannot flood us
        except (TimeoutError, httpx.TimeoutException):
            raise _Transient("timed out") from None
        except httpx.HTTPError as exc:
            raise _Transient(f"request failed: {type(exc).__name__}") from None
        if 200 <= response.status_code < 300:
            return response.status_code
        raise _Transient(f"answered {response.status_code}", response.status_code)

    async def _failed(
        self,
        app: AppRecord,
        row: Claimed,
        error: str,
        http_status: int | None,
        retry_in: float | None,
        report: Report,
    ) -> None:
        async with self.router.enter(app) as conn:
            status = await conn.fetchval(
                _MARK_FAILED,
                row.id,
                row.claim_id,
                retry_in,
                http_status,
                error,
                self.config.max_attempts,
            )
            if status == "dead":
                await self._audit_dead(conn, row.id, row.endpoint_id, row.event_type, error)
        log.warning(
            "webhook_delivery_failed",
            app_id=app.app_id,
            delivery_id=row.id,
            endpoint_id=row.endpoint_id,
            attempt=row.attempts,
            status=status,
            error=error[:200],
        )
        if status == "dead":
            report.dead += 1
        elif status == "pending":
            report.retried += 1

    async def _audit_dead(
        self,
        conn: asyncpg.Connection,
        delivery_id: int,
        endpoint_id: str,
        event_type: str,
        error: str | None,
    ) -> None:
        await audit.record(
            conn,
            "webhook.delivery",
            "failure",
            audit.SYSTEM,
            actor_type="system",
            actor_id="webhook-worker",
            target_type="webhook_delivery",
            target_id=str(delivery_id),
            details={
                "endpoint_id": endpoint_id,
                "event_type": event_type,
                "status": "dead",
                **({"error": error[:200]} if error else {}),
            },
        )
