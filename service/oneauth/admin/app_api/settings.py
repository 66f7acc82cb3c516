"""An app's settings in its admin API (issue 15).

    GET   /settings               admin:settings:read: the stored settings and every
                                  effective value, ETag: "<sha256 of the stored settings>"
    PATCH /settings               admin:settings:write: ``{"set": {...}, "unset": [...]}``
                                  with If-Match (428 without, 412 stale) → 200 the new
                                  settings and ETag; 202 + Location if the job runner
                                  has not finished within 10 s
    GET   /settings/jobs/{id}     admin:settings:read: such a change's state

The settings live in the registry (``oneauth.apps.settings``), which the serving role
may read and never write (D1): a change is a ``configure`` job for the platform's job
runner (``oneauth platform worker``, operator role), like every registry write. The
job's app is the verified caller's app, never anything the request names, so an app's
admin can change no other app. The runner re-checks the ETag under ``FOR UPDATE`` (two
PATCHes with one ETag: one wins, the other is 412) and audits ``admin.settings.update``
in the app's log with the acting client, in the job's transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.admin import etag
from oneauth.admin.app_api._rest import NO_STORE, PREFIX
from oneauth.admin.guard import AdminCaller, admin_operation, audit_details
from oneauth.admin.models_rest import AdminSettings, SettingsJob, SettingsJobError, SettingsPatch
from oneauth.apps import policy
from oneauth.apps.models import AppRecord
from oneauth.errors import Conflict, NotFound, ValidationFailed
from oneauth.http.contract import Operation, declared, json_body, json_response
from oneauth.platform import apps as platform_apps
from oneauth.platform import repo
from oneauth.platform.api import TERMINAL, job_waiter
from oneauth.services import Services

WAIT_SECONDS = 10.0
EVENT = "admin.settings.update"


class SettingsJobNotFound(NotFound):
    code, status, title = "job_not_found", 404, "No such settings job"


class SettingsUpdateFailed(Conflict):
    code, status, title = "settings_update_failed", 409, "The settings change was refused"


async def _fresh(request: Request, caller: AdminCaller) -> AppRecord:
    # Read fresh, not from the process cache: the ETag must name what is stored now.
    registry = Services.of(request).registry
    registry.invalidate(caller.app.app_id)
    return await registry.get(caller.app.app_id) or caller.app


def _answer(stored: dict[str, Any]) -> Response:
    try:
        effective = policy.effective(stored)
    except policy.PolicyError:  # edited by hand: the service runs on defaults
        effective = policy.effective({})
    return json_response(
        AdminSettings(settings=stored, effective=effective),
        headers={**NO_STORE, "etag": etag.etag_of(stored)},
    )


@admin_operation(
    Operation(
        "The app's settings: what is set, and every effective value; ETag for If-Match",
        responses={200: AdminSettings},
    ),
    scope="admin:settings:read",
)
async def show_settings(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    return _answer(dict((await _fresh(request, caller)).settings))


def changes_of(body: SettingsPatch, stored: dict[str, Any]) -> dict[str, Any]:
    """The job's changes (a null value: back to the default), after the one policy
    parser accepted the whole result; 422 naming the key otherwise."""
    for field, keys in (("set", sorted(body.set)), ("unset", sorted(body.unset))):
        unknown = [k for k in keys if k not in policy.setting_names()]
        if unknown:
            raise ValidationFailed(policy.unknown_setting(unknown[0]), extra={"field": field})
    both = sorted(set(body.set) & set(body.unset))
    if both:
        raise ValidationFailed(f"{both[0]} is both set and unset", extra={"field": "unset"})
    nulls = sorted(k for k, v in body.set.items() if v is None)
    if nulls:
        raise ValidationFailed(
            f"{nulls[0]}: null is not a value; name the key in unset", extra={"field": "set"}
        )
    if not body.set and not body.unset:
        raise ValidationFailed("nothing to change: send set or unset", extra={"field": "set"})
    wanted = {k: v for k, v in stored.items() if k not in body.unset} | body.set
    try:
        policy.parse(wanted)
    except policy.PolicyError as exc:  # the message names the key
        raise ValidationFailed(str(exc), extra={"field": "set"}) from None
    return {**body.set, **dict.fromkeys(body.unset)}


def _location(app_id: str, job_id: uuid.UUID) -> str:
    return f"/apps/{app_id}{PREFIX}/settings/jobs/{job_id}"


def _job(row: asyncpg.Record) -> SettingsJob:
    result = row["result"]
    if isinstance(result, str):
        result = msgspec.json.decode(result)
    settings = error = None
    if isinstance(result, dict) and isinstance(result.get("app"), dict):
        settings = dict(result["app"].get("settings") or {})
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        error = msgspec.convert(result["error"], SettingsJobError)
    return SettingsJob(job_id=str(row["id"]), status=row["status"], settings=settings, error=error)


@admin_operation(
    Operation(
        "Change the app's settings: {set, unset} with If-Match (the operator-role job runner"
        " writes the registry)",
        body=SettingsPatch,
        responses={200: AdminSettings, 202: SettingsJob},
        errors=(409, 412, 422, 428),
        if_match=True,
    ),
    scope="admin:settings:write",
)
async def _queue_update(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    """Check the ETag, validate, queue the job: committed when this returns."""
    body = await json_body(request, SettingsPatch)
    fresh = await _fresh(request, caller)
    stored = dict(fresh.settings)
    etag.require_match(request, etag.etag_of(stored))
    changes = changes_of(body, stored)
    app_id = caller.app.app_id  # the verified caller's app: never the body's
    params: dict[str, Any] = {
        # The runner compares the registry row's own ETag (display name and settings)
        # under FOR UPDATE: a change since this read fails the job, nothing is lost.
        "if_match": platform_apps.etag(fresh),
        "settings": changes,
        "app_audit": {
            "event": EVENT,
            "actor_type": caller.actor_type,
            "actor_id": caller.actor_id,
            "target_type": "app",
            "target_id": app_id,
            "details": {
                **audit_details(caller),
                "set": sorted(body.set),
                "unset": sorted(body.unset),
            },
        },
    }
    async with repo.control(conn, caller.app):
        row = await repo.enqueue(
            conn,
            kind="configure",
            app_id=app_id,
            params=params,
            client_id=caller.client_id,
            request_id=caller.meta.request_id,
        )
    return json_response(
        _job(row), 202, headers={**NO_STORE, "location": _location(app_id, row["id"])}
    )


async def update_settings(request: Request) -> Response:
    """The guarded call (committed), then up to WAIT_SECONDS for the runner: 200 with
    the new settings, 412 when the job lost its If-Match, 202 + Location when the
    runner has not finished (the job stays queued: nothing is lost)."""
    queued = await _queue_update(request)
    if queued.status_code != 202:
        return queued
    job_id = uuid.UUID(msgspec.json.decode(bytes(queued.body))["job_id"])
    services = Services.of(request)

    async def finished() -> bool:
        return await repo.job_status(services.pool, job_id) in TERMINAL

    if not await job_waiter(request).wait(str(job_id), WAIT_SECONDS, finished):
        return queued
    row = await repo.get_job(services.pool, job_id)
    # This process serves the change at once; the others drop the app on the
    # registry's change notice (the UPDATE's trigger).
    services.registry.invalidate(row["app_id"])
    job = _job(row)
    if job.status == "succeeded" and job.settings is not None:
        return _answer(job.settings)
    error = job.error or SettingsJobError(code="job_failed", detail="the job failed")
    if error.code == "precondition_failed":
        app = await services.registry.get(row["app_id"])
        current = etag.etag_of(dict(app.settings)) if app is not None else '""'
        raise etag.PreconditionFailed(error.detail, headers={"etag": current})
    if error.code == "invalid_request":
        raise ValidationFailed(error.detail, extra={"field": "set"})
    raise SettingsUpdateFailed(error.detail)


update_settings.__contract__ = declared(_queue_update)  # type: ignore[attr-defined]
update_settings.__doc__ = _queue_update.__doc__


@admin_operation(
    Operation(
        "A settings change queued by PATCH /settings: its state (settings once it succeeded)",
        responses={200: SettingsJob},
        errors=(404,),
    ),
    scope="admin:settings:read",
)
async def show_settings_job(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    try:
        job_id = uuid.UUID(request.path_params["job_id"])
    except ValueError:
        raise SettingsJobNotFound("no such settings job") from None
    async with repo.control(conn, caller.app):
        # This app's own settings jobs only: another app's job id is a 404 here.
        row = await repo.get_settings_job(conn, job_id, caller.app.app_id)
    if row is None:
        raise SettingsJobNotFound("no such settings job")
    return json_response(_job(row), headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/settings", show_settings, methods=["GET"]),
        Route(f"{PREFIX}/settings", update_settings, methods=["PATCH"]),
        Route(f"{PREFIX}/settings/jobs/{{job_id}}", show_settings_job, methods=["GET"]),
    ]
