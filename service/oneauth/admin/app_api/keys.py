"""An app's signing keys in its admin API (issue 15).

    GET   /keys          admin:keys:read: every key's public facts, no private part
    POST  /keys/rotate   admin:keys:write: normal, emergency or emergency-all rotation

The rotation is the one ``oneauth keys rotate`` runs (:func:`oneauth.tokens.keystore.
rotate`: audited ``keys.rotate`` / ``keys.emergency_rotation`` with the actor, NOTIFY
``oneauth_keys`` so every process reloads at commit, T3).
"""

from __future__ import annotations

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.admin import guard
from oneauth.admin.app_api._rest import NO_STORE, PREFIX, iso
from oneauth.admin.guard import AdminCaller, admin_operation
from oneauth.admin.models_rest import AdminKey, AdminKeys, KeyRotate, KeyRotation
from oneauth.errors import KeyRotationRefused
from oneauth.http.contract import Operation, json_body, json_response
from oneauth.services import Services
from oneauth.tokens import keystore


@admin_operation(
    Operation(
        "The app's signing keys and their states (next, active, retired, revoked)",
        responses={200: AdminKeys},
    ),
    scope="admin:keys:read",
)
async def list_keys(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    # A handful of rows per app (two algorithms x next/active/retired): one page.
    rows = await keystore.list_keys(conn)
    items = [
        AdminKey(
            kid=r["kid"],
            alg=r["alg"],
            state=r["state"],
            created_at=r["created_at"].isoformat(),
            activate_after=iso(r["activate_after"]),
            activated_at=iso(r["activated_at"]),
            retired_at=iso(r["retired_at"]),
            publish_until=iso(r["publish_until"]),
            revoked_at=iso(r["revoked_at"]),
        )
        for r in rows
    ]
    return json_response(AdminKeys(items=items, next_cursor=None), headers=NO_STORE)


@admin_operation(
    Operation(
        "Rotate the signing keys: the published next key signs, the active one retires"
        " (emergency: is revoked now; all: every key is revoked and a fresh one signs)",
        body=KeyRotate,
        responses={200: KeyRotation},
        errors=(409, 413, 415, 422),
    ),
    scope="admin:keys:write",
)
async def rotate(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    data = await json_body(request, KeyRotate)
    services = Services.of(request)
    try:
        report = await keystore.rotate(
            conn,
            caller.app,
            services.box,
            actor_type=caller.actor_type,
            actor_id=caller.actor_id,
            emergency=data.emergency,
            force=data.force,
            revoke_all=data.all,
            meta=caller.meta,
        )
    except keystore.RotationRefused as exc:
        raise KeyRotationRefused(str(exc)) from None
    mode = keystore.rotation_mode(emergency=data.emergency, revoke_all=data.all)
    await guard.audit(
        conn,
        caller,
        "admin.keys.rotate",
        target_type="app",
        target_id=caller.app.app_id,
        details={"mode": mode, "activated": report.activated, "revoked": report.revoked},
    )
    return json_response(
        KeyRotation(mode=mode, **report.__dict__),  # type: ignore[arg-type]
        headers=NO_STORE,
    )


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/keys", list_keys, methods=["GET"]),
        Route(f"{PREFIX}/keys/rotate", rotate, methods=["POST"]),
    ]
