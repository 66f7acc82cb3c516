"""An app's users in its admin API (issue 15): ``/apps/{app_id}/admin/v1/users``.

    GET    /users                       list: ?email=<prefix>&status=&cursor=&limit=
    POST   /users                       create (Idempotency-Key)
    GET    /users/{user_id}             show: profile, status, sessions, factors,
                                        linked identities, orgs, roles
    PATCH  /users/{user_id}             update
    POST   /users/{user_id}/disable     disable (ends sessions and refresh families)
    POST   /users/{user_id}/enable      enable
    DELETE /users/{user_id}             delete
    POST   /users/{user_id}/sessions/revoke   end every session
    POST   /users/{user_id}/mfa/reset   remove TOTP, passkeys and recovery codes
    GET    /users/{user_id}/sessions    the live sessions

Views are thin: parse, call :mod:`oneauth.admin.user_service`, serialize. Every
change is audited in this app's log with the acting client or operator.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.admin.guard import AdminCaller, admin_operation
from oneauth.admin.models import AdminUser, UserPage, UserQuery
from oneauth.admin.pagination import decode_cursor, next_cursor, query
from oneauth.http.contract import Operation, json_response
from oneauth.identity import directory

PREFIX = "/admin/v1"
NO_STORE = {"cache-control": "no-store"}


def admin_user(row: asyncpg.Record) -> AdminUser:
    last = row["last_login_at"]
    return AdminUser(
        id=str(row["id"]),
        email=row["email"],
        email_verified=row["email_verified"],
        status=row["status"],
        has_password=row["has_password"],
        created_at=row["created_at"].isoformat(),
        updated_at=row["updated_at"].isoformat(),
        last_login_at=last.isoformat() if last else None,
    )


@admin_operation(
    Operation(
        "List the app's users (search by address prefix; keyset pages)",
        query=UserQuery,
        responses={200: UserPage},
        errors=(422,),
    ),
    scope="admin:users:read",
)
async def list_users(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    q = query(request, UserQuery)
    if q.email is not None:
        # Searching matches the normalized address (lower-cased, as stored for sign-in).
        after = decode_cursor(q.cursor, {"email_normalized": str})
        rows = await directory.page_by_email(
            conn,
            q.email.strip().lower(),
            status=q.status,
            after=after["email_normalized"] if after else None,
            limit=q.limit,
        )
        cursor = next_cursor(rows, q.limit, "email_normalized")
    else:
        keys = decode_cursor(q.cursor, {"created_at": datetime, "id": uuid.UUID})
        rows = await directory.page_by_created(
            conn,
            status=q.status,
            after=(keys["created_at"], keys["id"]) if keys else None,
            limit=q.limit,
        )
        cursor = next_cursor(rows, q.limit, "created_at", "id")
    items = [admin_user(r) for r in rows[: q.limit]]
    return json_response(UserPage(items=items, next_cursor=cursor), headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/users", list_users, methods=["GET"]),
    ]
