"""The platform API's job runner (``oneauth platform worker``): the operator role.

The service role may not create schemas or roles (D1), so the platform API only
queues its writes in ``oneauth.platform_jobs``; this runner executes them with
the operator URL, through the very lifecycle functions the CLI uses
(:mod:`oneauth.apps.lifecycle`).

One job, one transaction: the job row is claimed ``FOR UPDATE SKIP LOCKED``
(several runners never take the same job, and never wait for each other), the
lifecycle function runs in a savepoint of that transaction, and the job's
outcome and its row in the platform app's audit_log (acting platform client,
the request id of the call that queued it) commit with the change. A runner that
dies mid-job leaves nothing half-done: its transaction rolls back and the job
is still queued for the next runner. A refused change (the app exists, is
missing, the ETag moved, a setting is invalid) fails the job with a code and a
sentence; nothing of it remains.

Runners wake on ``LISTEN oneauth_platform_jobs`` (the insert trigger) and poll
every ``poll`` seconds besides, for notices lost while disconnected.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg.types.json import Jsonb

from oneauth import audit
from oneauth.admin.etag import etag_of
from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.db.naming import PLATFORM_APP_ID, InvalidAppId, validate_new_app_id
from oneauth.db.roles import check_operator_role
from oneauth.platform.apps import app_view, editable
from oneauth.settings import Settings

log = structlog.get_logger("oneauth.platform")

CHANNEL = "oneauth_platform_jobs"
DONE_CHANNEL = "oneauth_platform_jobs_done"

_CLAIM = (
    "SELECT id, kind, app_id, params, actor_client_id, request_id FROM oneauth.platform_jobs"
    " WHERE status = 'queued' ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_FINISH = (
    "UPDATE oneauth.platform_jobs SET status = %s, result = %s, attempts = attempts + 1,"
    " started_at = %s, finished_at = now() WHERE id = %s"
)


class JobRefused(Exception):
    """The job cannot be carried out; ``code`` and the message go to the caller."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Job:
    id: uuid.UUID
    kind: str
    app_id: str
    params: dict[str, Any]
    client_id: str
    request_id: str | None


def _execute(conn: lifecycle.Conn, settings: Settings, job: Job) -> AppRecord | lifecycle.Deletion:
    """Run the job's lifecycle function (in a savepoint of the caller's transaction)."""
    p = job.params
    try:
        if job.kind == "provision":
            validate_new_app_id(job.app_id)
            made = lifecycle.provision(
                conn,
                settings,
                job.app_id,
                str(p.get("display_name", "")),
                app_settings=p.get("settings"),
            )
            if not made.created:
                # Idempotency is the Idempotency-Key's business: a second
                # provision of an existing id is a conflict, not a success.
                raise JobRefused("app_exists", f"app {job.app_id!r} already exists")
            return made.app
        current = lifecycle.get(conn, job.app_id, for_update=True)
        if current is None or job.app_id == PLATFORM_APP_ID:
            raise JobRefused("app_not_found", f"no app {job.app_id!r}")
        if job.kind == "configure":
            if p.get("if_match") != etag_of(editable(current)):
                raise JobRefused(
                    "precondition_failed",
                    "the app changed since its ETag was read; GET it again and retry",
                )
            changes: dict[str, Any] = p.get("settings") or {}
            result = lifecycle.configure(
                conn,
                job.app_id,
                set_values={k: v for k, v in changes.items() if v is not None},
                unset=[k for k, v in changes.items() if v is None],
                display_name=p.get("display_name"),
            )
            return result.app
        if job.kind in ("suspend", "resume"):
            return lifecycle.set_status(
                conn, job.app_id, "suspended" if job.kind == "suspend" else "active"
            )
        if job.kind == "delete":
            return lifecycle.delete_app(conn, job.app_id, settings=settings)
        raise JobRefused("unknown_job", f"unknown job kind {job.kind!r}")
    except lifecycle.AppMissing as exc:
        raise JobRefused("app_not_found", str(exc)) from None
    except lifecycle.AppConflict as exc:
        raise JobRefused("app_conflict", str(exc)) from None
    except (lifecycle.AppError, InvalidAppId) as exc:
        raise JobRefused("invalid_request", str(exc)) from None


def run_one(conn: lifecycle.Conn, settings: Settings) -> uuid.UUID | None:
    """Claim and run the oldest queued job; its id, or None when none is queued."""
    with conn.transaction():
        row = conn.execute(_CLAIM).fetchone()
        if row is None:
            return None
        params = row[3] if isinstance(row[3], dict) else json.loads(row[3] or "{}")
        job = Job(row[0], row[1], row[2], params, row[4], row[5])
        started = time.time()
        from datetime import UTC, datetime

        started_at = datetime.fromtimestamp(started, UTC)
        outcome: audit.Outcome = "success"
        try:
            with conn.transaction():  # a savepoint: a refusal undoes only the job's change
                done = _execute(conn, settings, job)
            status = "succeeded"
            record = done.app if isinstance(done, lifecycle.Deletion) else done
            result: dict[str, Any] = {
                "app": json.loads(_encode(app_view(record, settings.public_url)))
            }
            if isinstance(done, lifecycle.Deletion) and done.receipt is not None:
                result["receipt"] = done.receipt
        except JobRefused as exc:
            status, outcome = "failed", "failure"
            result = {"error": {"code": exc.code, "detail": exc.detail}}
        except psycopg.Error as exc:
            # The savepoint is gone; the claim survives. Say what failed without the
            # server's text (it may name internals); the log has it.
            log.error("platform_job_failed", job_id=str(job.id), kind=job.kind, error=str(exc))
            status, outcome = "failed", "error"
            result = {"error": {"code": "job_failed", "detail": "the job failed; see the log"}}
        conn.execute(_FINISH, (status, Jsonb(result), started_at, job.id))
        _audit(conn, job, outcome, result)
        _audit_in_app(conn, job, outcome, result)
    log.info(
        "platform_job",
        job_id=str(job.id),
        kind=job.kind,
        app_id=job.app_id,
        status=status,
        ms=round((time.time() - started) * 1000),
    )
    return job.id


def _encode(view: Any) -> bytes:
    import msgspec

    return msgspec.json.encode(view)


def _audit(conn: lifecycle.Conn, job: Job, outcome: audit.Outcome, result: dict[str, Any]) -> None:
    platform = lifecycle.get(conn, PLATFORM_APP_ID)
    if platform is None:  # no control plane: nothing queued these jobs through the API
        return
    details: dict[str, Any] = {"job_id": str(job.id)}
    if "error" in result:
        details["error"] = result["error"]["code"]
    if isinstance(job.params.get("app_audit"), dict):
        # Queued by the app's own admin API: the actor is a client of that app (or
        # the console), not a platform client.
        details["via"] = "app_admin_api"
    with ops.app_context(conn, platform.names):
        audit.record_sync(
            conn,
            f"platform.app.{job.kind}",
            outcome,
            audit.RequestMeta(request_id=job.request_id),
            app_id=PLATFORM_APP_ID,
            actor_type="client",
            actor_id=job.client_id,
            target_type="app",
            target_id=job.app_id,
            details=details,
        )


def _audit_in_app(
    conn: lifecycle.Conn, job: Job, outcome: audit.Outcome, result: dict[str, Any]
) -> None:
    """A job an app's own admin API queued (``params.app_audit``: event, actor, details)
    is audited in THAT app's log too, with its outcome, in the job's transaction: the
    row commits with the change or with its refusal, never without either."""
    spec = job.params.get("app_audit")
    if not isinstance(spec, dict):
        return
    names = lifecycle.get(conn, job.app_id)
    if names is None or names.status == "deleted":
        return
    details: dict[str, Any] = {**(spec.get("details") or {}), "job_id": str(job.id)}
    if "error" in result:
        details["error"] = result["error"]["code"]
    with ops.app_context(conn, names.names):
        audit.record_sync(
            conn,
            str(spec["event"]),
            outcome,
            audit.RequestMeta(request_id=job.request_id),
            app_id=job.app_id,
            actor_type=spec["actor_type"],
            actor_id=spec["actor_id"],
            target_type=spec.get("target_type"),
            target_id=spec.get("target_id"),
            details=details,
        )


def drain(conn: lifecycle.Conn, settings: Settings) -> int:
    """Run queued jobs until none is left; how many ran."""
    ran = 0
    while run_one(conn, settings) is not None:
        ran += 1
    return ran


@contextlib.contextmanager
def _connections(settings: Settings) -> Iterator[tuple[lifecycle.Conn, lifecycle.Conn]]:
    with ops.connect(settings.operator_url) as work, ops.connect(settings.operator_url) as listen:
        check_operator_role(work)
        listen.execute(f"LISTEN {CHANNEL}")
        yield work, listen


def run(
    settings: Settings,
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    poll: float = 5.0,
) -> None:
    """Run jobs until ``stop`` is set (or, ``once``, until the queue is empty)."""
    stop = stop or threading.Event()
    backoff = 0.5
    while not stop.is_set():
        try:
            with _connections(settings) as (work, listen):
                backoff = 0.5
                while not stop.is_set():
                    drain(work, settings)
                    if once:
                        return
                    # Wake on a new job's notice, or poll; short slices so stop is prompt.
                    deadline = time.monotonic() + poll
                    while not stop.is_set() and time.monotonic() < deadline:
                        if any(True for _ in listen.notifies(timeout=0.25, stop_after=1)):
                            break
        except psycopg.OperationalError as exc:
            if once:
                raise
            log.warning("platform_runner_disconnected", error=str(exc).strip(), retry_in=backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)


class RunnerThread:
    """A runner in a thread of this process (``make run``, tests); ``stop()`` joins it."""

    def __init__(self, settings: Settings, *, poll: float = 5.0, name: str = "platform-runner"):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run,
            args=(settings,),
            kwargs={"stop": self._stop, "poll": poll},
            name=name,
            daemon=True,
        )

    def start(self) -> RunnerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)


async def run_forever(settings: Settings, *, once: bool = False) -> None:
    """``oneauth platform worker``: the loop above in a thread, stopped by SIGINT/SIGTERM."""
    import asyncio
    import signal

    if once:
        await asyncio.to_thread(run, settings, once=True)
        return
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print("oneauth platform worker: running the platform API's jobs", flush=True)
    await asyncio.to_thread(run, settings, stop=stop)
