"""The platform API, ``/admin/v1/apps...`` and ``/admin/v1/jobs...`` (issue 15, B4).

Top-level routes, outside the app gate, for tokens of the reserved platform
app's API clients only (:func:`oneauth.admin.guard.platform_operation`: an
app's token is 401 here, a platform token is 401 at every app's admin API).
Registry data only: never an app's users, clients or keys.

Reads answer from the registry in ONE query per call. Writes (provision,
configure, suspend, resume, delete) are queued as jobs for the operator-role
runner (:mod:`oneauth.platform.runner`), since the service's role cannot create
schemas or roles: they answer ``202`` with the job and ``Location:
/admin/v1/jobs/{id}``; ``?wait=<seconds, up to 10>`` waits for the job to
finish first (LISTEN on the jobs' completion notice, plus a short poll).
Every call is audited in the platform app's audit_log (the control-plane
audit log) with the acting platform client, in the call's own transaction;
the runner audits each job's outcome there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.admin import etag as etags
from oneauth.admin import pagination
from oneauth.admin.guard import AdminCaller, audit, platform_operation
from oneauth.apps import policy
from oneauth.db.naming import InvalidAppId, validate_new_app_id
from oneauth.errors import Conflict, NotFound, ValidationFailed
from oneauth.http.contract import Operation, declared, json_body, json_response
from oneauth.platform import apps, repo
from oneauth.platform.models import (
    AppListQuery,
    AppPage,
    AppView,
    ConfigureBody,
    JobError,
    JobListQuery,
    JobPage,
    JobView,
    ProvisionBody,
    WaitQuery,
)
from oneauth.platform.runner import DONE_CHANNEL
from oneauth.services import Services

__all__ = ["DONE_CHANNEL", "JobWaiter", "routes"]

NO_STORE = {"cache-control": "no-store"}
TERMINAL = frozenset({"succeeded", "failed"})


class PlatformAppNotFound(NotFound):
    code, status, title = "app_not_found", 404, "No such app"


class JobNotFound(NotFound):
    code, status, title = "job_not_found", 404, "No such job"


class AppExists(Conflict):
    code, status, title = "app_exists", 409, "An app with this id exists (or existed)"


# --- waiting for a job (?wait=N) ------------------------------------------------------


class JobWaiter:
    """Wakes requests waiting for a job when its completion notice arrives.

    Subscribed to ``oneauth_platform_jobs_done`` on the process's Notifier; a
    waiter also re-reads the job every ``poll`` seconds, so a lost notice (the
    LISTEN connection down) costs at most that much."""

    def __init__(self, poll: float = 1.0) -> None:
        self.poll = poll
        self._events: dict[str, set[asyncio.Event]] = {}

    def on_done(self, job_id: str | None) -> None:
        targets = (
            [e for events in self._events.values() for e in events]
            if job_id is None  # the notifier reconnected: notices may be lost
            else list(self._events.get(job_id, ()))
        )
        for event in targets:
            event.set()

    async def wait(
        self, job_id: str, seconds: float, finished: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Until ``finished()`` or ``seconds`` passed; whether it finished."""
        deadline = time.monotonic() + seconds
        event = asyncio.Event()
        self._events.setdefault(job_id, set()).add(event)
        try:
            while True:
                if await finished():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(left, self.poll))
        finally:
            waiting = self._events.get(job_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[job_id]


def job_waiter(request: Request) -> JobWaiter:
    found = getattr(request.app.state, "platform_jobs", None)
    if not isinstance(found, JobWaiter):  # an app built without the lifespan (tests)
        found = request.app.state.platform_jobs = JobWaiter()
    return found


def _job_view(row: asyncpg.Record) -> JobView:
    result = row["result"]
    if isinstance(result, str):
        result = msgspec.json.decode(result)
    app = error = None
    if isinstance(result, dict) and isinstance(result.get("app"), dict):
        app = msgspec.convert(result["app"], AppView)
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        error = msgspec.convert(result["error"], JobError)
    finished: datetime | None = row["finished_at"]
    receipt = result.get("receipt") if isinstance(result, dict) else None
    return JobView(
        job_id=str(row["id"]),
        kind=row["kind"],
        app_id=row["app_id"],
        status=row["status"],
        result=app,
        error=error,
        created_at=row["created_at"].isoformat(),
        finished_at=None if finished is None else finished.isoformat(),
        receipt=receipt if isinstance(receipt, str) else None,
    )


def _job_response(row: asyncpg.Record, status_code: int = 202) -> Response:
    headers = {**NO_STORE, "location": f"/admin/v1/jobs/{row['id']}"}
    return json_response(_job_view(row), status_code, headers=headers)


def waiting(endpoint: Callable[[Request], Awaitable[Response]]) -> Any:
    """``?wait=N`` for a route answering a job: after the guarded call committed (the
    runner cannot see the job before), wait up to N seconds for it to finish and
    answer its state then. The declaration is the endpoint's."""

    async def view(request: Request) -> Response:
        response = await endpoint(request)
        if response.status_code not in (200, 202):
            return response
        # A replayed answer (Idempotency-Key) is the stored body alone: read the id there.
        job_id = uuid.UUID(msgspec.json.decode(bytes(response.body))["job_id"])
        services = Services.of(request)
        raw = request.query_params.get("wait")
        seconds = float(raw) if raw else 0.0  # validated by the view (WaitQuery)

        async def finished() -> bool:
            status = await services.pool.fetchval(
                "SELECT status FROM oneauth.platform_jobs WHERE id = $1", job_id
            )
            return status in TERMINAL

        if seconds > 0:
            await job_waiter(request).wait(str(job_id), seconds, finished)
        elif "location" in response.headers:
            return response
        row = await repo.get_job(services.pool, job_id)
        if row["status"] in TERMINAL:
            # This process serves the change at once, notice or not (B3: a
            # suspended app is 404 from here on); others drop it on NOTIFY.
            services.registry.invalidate(row["app_id"])
        fresh = _job_response(row, response.status_code)
        for name in ("idempotency-replayed",):
            if name in response.headers:
                fresh.headers[name] = response.headers[name]
        return fresh

    view.__name__ = getattr(endpoint, "__name__", "view")
    view.__doc__ = endpoint.__doc__
    view.__contract__ = declared(endpoint)  # type: ignore[attr-defined]
    return view


# --- reads ------------------------------------------------------------------------------


def _app_id(request: Request) -> str:
    app_id = str(request.path_params["app_id"])
    if len(app_id) > 40:
        raise PlatformAppNotFound()
    return app_id


async def _app(conn: asyncpg.Connection, caller: AdminCaller, app_id: str) -> Any:
    async with repo.control(conn, caller.app):
        found = await repo.get_app(conn, app_id)
    if found is None:
        raise PlatformAppNotFound(f"no app {app_id!r}")
    return found


@platform_operation(
    Operation(
        "List apps: prefix search on id or name, status filter, keyset pages",
        query=AppListQuery,
        responses={200: AppPage},
        errors=(422,),
    ),
    scope="platform:apps:read",
)
async def list_apps(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    query = pagination.query(request, AppListQuery)
    if query.q is not None and query.q[-1] in repo.UNBUMPABLE:
        raise ValidationFailed("q must not end with U+D7FF or U+10FFFF", extra={"field": "q"})
    after = pagination.decode_cursor(query.cursor, {"app_id": str})
    async with repo.control(conn, caller.app):
        rows = await repo.list_apps(
            conn,
            q=query.q,
            status=query.status,
            after=None if after is None else after["app_id"],
            limit=query.limit + 1,
        )
    public_url = Services.of(request).settings.public_url
    page = [apps.app_view(r, public_url) for r in rows[: query.limit]]
    cursor = (
        pagination.encode_cursor({"app_id": rows[query.limit - 1].app_id})
        if len(rows) > query.limit
        else None
    )
    await audit(
        conn,
        caller,
        "platform.apps.list",
        details={"q": query.q, "status": query.status, "count": len(page)},
    )
    return json_response(AppPage(items=page, next_cursor=cursor), headers=NO_STORE)


@platform_operation(
    Operation(
        "One app: its registry row and migrate status (schema version vs this release's)",
        responses={200: AppView},
        errors=(404,),
    ),
    scope="platform:apps:read",
)
async def show_app(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    found = await _app(conn, caller, _app_id(request))
    await audit(conn, caller, "platform.app.show", target_type="app", target_id=found.app_id)
    public_url = Services.of(request).settings.public_url
    headers = {**NO_STORE, "etag": apps.etag(found)}
    return json_response(apps.app_view(found, public_url), headers=headers)


@platform_operation(
    Operation(
        "One job of the platform API", query=WaitQuery, responses={200: JobView}, errors=(404, 422)
    ),
    scope="platform:apps:read",
)
async def show_job(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    pagination.query(request, WaitQuery)
    try:
        job_id = uuid.UUID(str(request.path_params["job_id"])[:40])
    except ValueError:
        raise JobNotFound() from None
    async with repo.control(conn, caller.app):
        row = await repo.get_job(conn, job_id)
    if row is None:
        raise JobNotFound()
    await audit(
        conn,
        caller,
        "platform.job.show",
        target_type="app",
        target_id=row["app_id"],
        details={"job_id": str(job_id)},
    )
    return _job_response(row, 200)


@platform_operation(
    Operation(
        "List jobs, newest first (filter by app and status), keyset pages",
        query=JobListQuery,
        responses={200: JobPage},
        errors=(422,),
    ),
    scope="platform:apps:read",
)
async def list_jobs(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    query = pagination.query(request, JobListQuery)
    after = pagination.decode_cursor(query.cursor, {"created_at": datetime, "id": uuid.UUID})
    async with repo.control(conn, caller.app):
        rows = await repo.list_jobs(
            conn,
            app_id=query.app_id,
            status=query.status,
            after=None if after is None else (after["created_at"], after["id"]),
            limit=query.limit + 1,
        )
    items = [_job_view(r) for r in rows[: query.limit]]
    cursor = pagination.next_cursor(rows, query.limit, "created_at", "id")
    await audit(
        conn,
        caller,
        "platform.jobs.list",
        details={"app_id": query.app_id, "status": query.status, "count": len(items)},
    )
    return json_response(JobPage(items=items, next_cursor=cursor), headers=NO_STORE)


# --- writes (jobs) -----------------------------------------------------------------------


async def _enqueue(
    conn: asyncpg.Connection,
    caller: AdminCaller,
    kind: str,
    app_id: str,
    params: dict[str, Any],
) -> Response:
    """Queue the job and audit the call, in the call's transaction; 202 + Location."""
    async with repo.control(conn, caller.app):
        row = await repo.enqueue(
            conn,
            kind=kind,
            app_id=app_id,
            params=params,
            client_id=caller.client_id,
            request_id=caller.meta.request_id,
        )
    await audit(
        conn,
        caller,
        f"platform.app.{kind}.requested",
        target_type="app",
        target_id=app_id,
        details={"job_id": str(row["id"])},
    )
    return _job_response(row)


_WRITE_ERRORS = (404, 409, 422)


@platform_operation(
    Operation(
        "Provision an app (a job; Idempotency-Key replays the first answer)",
        body=ProvisionBody,
        query=WaitQuery,
        responses={202: JobView},
        errors=(409, 422),
        idempotent=True,
    ),
    scope="platform:apps:write",
)
async def provision(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    pagination.query(request, WaitQuery)
    body = await json_body(request, ProvisionBody)
    try:
        validate_new_app_id(body.app_id)
        if body.settings is not None:
            policy.parse(body.settings)
    except InvalidAppId as exc:
        raise ValidationFailed(str(exc), extra={"field": "app_id"}) from None
    except policy.PolicyError as exc:
        raise ValidationFailed(str(exc), extra={"field": "settings"}) from None
    async with repo.control(conn, caller.app):
        existing = await repo.get_app(conn, body.app_id)
    if existing is not None:
        # Deleted apps keep their id forever (tokens issued for it stay dead).
        raise AppExists(f"app {body.app_id!r} exists or existed; an app_id is never reused")
    params: dict[str, Any] = {"display_name": body.display_name}
    if body.settings is not None:
        params["settings"] = body.settings
    return await _enqueue(conn, caller, "provision", body.app_id, params)


@platform_operation(
    Operation(
        "Change an app's display name or settings (a job; If-Match with the app's ETag)",
        body=ConfigureBody,
        query=WaitQuery,
        responses={202: JobView},
        errors=(*_WRITE_ERRORS, 412, 428),
        if_match=True,
    ),
    scope="platform:apps:write",
)
async def configure(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    pagination.query(request, WaitQuery)
    body = await json_body(request, ConfigureBody)
    found = await _app(conn, caller, _app_id(request))
    if found.status == "deleted":
        raise PlatformAppNotFound(f"app {found.app_id!r} is deleted")
    current = apps.etag(found)
    etags.require_match(request, current)
    changes = body.settings or {}
    unknown = sorted(set(changes) - policy.setting_names())
    if unknown:
        raise ValidationFailed(policy.unknown_setting(unknown[0]), extra={"field": "settings"})
    wanted = {k: v for k, v in {**found.settings, **changes}.items() if v is not None}
    try:
        policy.parse(wanted)
    except policy.PolicyError as exc:
        raise ValidationFailed(str(exc), extra={"field": "settings"}) from None
    if body.display_name is None and not changes:
        raise ValidationFailed("nothing to change: send display_name or settings")
    params: dict[str, Any] = {"if_match": current, "settings": changes}
    if body.display_name is not None:
        params["display_name"] = body.display_name
    return await _enqueue(conn, caller, "configure", found.app_id, params)


def _status_change(kind: str, summary: str) -> Any:
    @platform_operation(
        Operation(summary, query=WaitQuery, responses={202: JobView}, errors=_WRITE_ERRORS),
        scope="platform:apps:write",
    )
    async def change(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
        pagination.query(request, WaitQuery)
        found = await _app(conn, caller, _app_id(request))
        if found.status == "deleted":
            raise PlatformAppNotFound(f"app {found.app_id!r} is deleted")
        return await _enqueue(conn, caller, kind, found.app_id, {})

    change.__name__ = f"{kind}_app"
    change.__qualname__ = f"{kind}_app"
    return change


suspend = _status_change("suspend", "Suspend an app: all its routes answer 404 (a job)")
resume = _status_change("resume", "Serve a suspended app again (a job)")
delete = _status_change(
    "delete", "Delete an app: drop its schema and role, keep a tombstone (a job; irreversible)"
)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/v1/apps", list_apps, methods=["GET"]),
        Route("/admin/v1/apps", waiting(provision), methods=["POST"]),
        Route("/admin/v1/apps/{app_id}", show_app, methods=["GET"]),
        Route("/admin/v1/apps/{app_id}", waiting(configure), methods=["PATCH"]),
        Route("/admin/v1/apps/{app_id}", waiting(delete), methods=["DELETE"]),
        Route("/admin/v1/apps/{app_id}/suspend", waiting(suspend), methods=["POST"]),
        Route("/admin/v1/apps/{app_id}/resume", waiting(resume), methods=["POST"]),
        Route("/admin/v1/jobs", list_jobs, methods=["GET"]),
        Route("/admin/v1/jobs/{job_id}", waiting(show_job), methods=["GET"]),
    ]
