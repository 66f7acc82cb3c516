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

from oneauth.admin import user_service
from oneauth.admin.guard import AdminCaller, admin_operation
from oneauth.admin.models import (
    AdminFactor,
    AdminLinkedIdentity,
    AdminSession,
    AdminUser,
    AdminUserDetail,
    AdminUserOrg,
    MfaReset,
    PageQuery,
    SessionPage,
    SessionsRevoked,
    UserCreate,
    UserPage,
    UserQuery,
    UserUpdate,
)
from oneauth.admin.pagination import decode_cursor, encode_cursor, next_cursor, query
from oneauth.http.contract import Operation, json_body, json_response
from oneauth.identity import directory
from oneauth.services import Services

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


def _user_id(request: Request) -> uuid.UUID:
    return user_service.user_id_of(request.path_params["user_id"])


@admin_operation(
    Operation(
        "Create a user (idempotent with Idempotency-Key); 409 email_taken if the address is",
        body=UserCreate,
        responses={201: AdminUser},
        errors=(409, 422, 503),
        idempotent=True,
    ),
    scope="admin:users:write",
)
async def create_user(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    body = await json_body(request, UserCreate)
    row = await user_service.create(Services.of(request), conn, caller, body)
    return json_response(admin_user(row), 201, headers=NO_STORE)


@admin_operation(
    Operation(
        "A user: profile, status, sessions, factors, linked identities, orgs, roles",
        responses={200: AdminUserDetail},
        errors=(404,),
    ),
    scope="admin:users:read",
)
async def show_user(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    found = await user_service.detail(conn, _user_id(request))
    return json_response(
        AdminUserDetail(
            user=admin_user(found.user),
            sessions=found.sessions,
            factors=[
                AdminFactor(
                    id=str(f.id),
                    kind=f.kind,
                    name=f.name,
                    confirmed=f.confirmed,
                    created_at=f.created_at.isoformat(),
                    last_used_at=f.last_used_at.isoformat() if f.last_used_at else None,
                    recovery_codes_left=left,
                )
                for f, left in found.factors
            ],
            linked_identities=[
                AdminLinkedIdentity(
                    id=str(i.id),
                    provider_id=i.provider_id,
                    provider_name=i.provider_name,
                    kind=i.kind,
                    email=i.email,
                    email_verified=i.email_verified,
                    created_at=i.created_at.isoformat(),
                    last_login_at=i.last_login_at.isoformat() if i.last_login_at else None,
                )
                for i in found.identities
            ],
            orgs=[AdminUserOrg(id=o.id, slug=o.slug, name=o.name, roles=r) for o, r in found.orgs],
            roles=found.roles,
            permissions=found.permissions,
        ),
        headers=NO_STORE,
    )


@admin_operation(
    Operation(
        "Change a user's address or whether it is verified",
        body=UserUpdate,
        responses={200: AdminUser},
        errors=(404, 409, 422),
    ),
    scope="admin:users:write",
)
async def update_user(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    user_id = _user_id(request)
    body = await json_body(request, UserUpdate)
    row = await user_service.update(conn, caller, user_id, body)
    return json_response(admin_user(row), headers=NO_STORE)


@admin_operation(
    Operation(
        "Disable a user: no sign-in, no refresh; every session and refresh family ends",
        responses={200: AdminUser},
        errors=(404,),
    ),
    scope="admin:users:write",
)
async def disable_user(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    row = await user_service.set_status(conn, caller, _user_id(request), "disabled")
    return json_response(admin_user(row), headers=NO_STORE)


@admin_operation(
    Operation("Enable a disabled user", responses={200: AdminUser}, errors=(404,)),
    scope="admin:users:write",
)
async def enable_user(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    row = await user_service.set_status(conn, caller, _user_id(request), "active")
    return json_response(admin_user(row), headers=NO_STORE)


@admin_operation(
    Operation(
        "Delete a user and everything of theirs in this app", responses={204: None}, errors=(404,)
    ),
    scope="admin:users:write",
)
async def delete_user(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    await user_service.delete(conn, caller, _user_id(request))
    return Response(status_code=204, headers=NO_STORE)


@admin_operation(
    Operation(
        "End every session of the user (browser and API) and their refresh families",
        responses={200: SessionsRevoked},
        errors=(404,),
    ),
    scope="admin:users:write",
)
async def revoke_sessions(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    ended = await user_service.revoke_sessions(conn, caller, _user_id(request))
    return json_response(SessionsRevoked(revoked=ended), headers=NO_STORE)


@admin_operation(
    Operation(
        "Reset the user's second factors: TOTP, passkeys and recovery codes go (user mailed)",
        responses={200: MfaReset},
        errors=(404,),
    ),
    scope="admin:users:write",
)
async def reset_mfa(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    counts = await user_service.reset_mfa(Services.of(request), conn, caller, _user_id(request))
    return json_response(
        MfaReset(
            totp_removed=counts.get("totp", 0),
            passkeys_removed=counts.get("webauthn", 0),
            recovery_codes_removed=counts.get("recovery_codes", 0),
        ),
        headers=NO_STORE,
    )


@admin_operation(
    Operation(
        "The user's live sessions (keyset pages)",
        query=PageQuery,
        responses={200: SessionPage},
        errors=(404, 422),
    ),
    scope="admin:users:read",
)
async def list_sessions(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    user_id = _user_id(request)
    q = query(request, PageQuery)
    after = decode_cursor(q.cursor, {"created_at": datetime, "id": uuid.UUID})
    items, more = await user_service.sessions_of(conn, user_id, after, q.limit)
    cursor = (
        encode_cursor({"created_at": items[-1].created_at, "id": items[-1].id}) if more else None
    )
    return json_response(
        SessionPage(
            items=[
                AdminSession(
                    id=str(i.id),
                    kind="browser" if i.kind == "browser" else "app",
                    client_id=i.client_id,
                    client_name=i.client_name,
                    amr=i.amr,
                    auth_time=i.auth_time.isoformat(),
                    created_at=i.created_at.isoformat(),
                    last_seen_at=i.last_seen_at.isoformat(),
                    user_agent=i.user_agent,
                )
                for i in items
            ],
            next_cursor=cursor,
        ),
        headers=NO_STORE,
    )


def routes() -> list[BaseRoute]:
    one = f"{PREFIX}/users/{{user_id}}"
    return [
        Route(f"{PREFIX}/users", list_users, methods=["GET"]),
        Route(f"{PREFIX}/users", create_user, methods=["POST"]),
        Route(one, show_user, methods=["GET"]),
        Route(one, update_user, methods=["PATCH"]),
        Route(one, delete_user, methods=["DELETE"]),
        Route(f"{one}/disable", disable_user, methods=["POST"]),
        Route(f"{one}/enable", enable_user, methods=["POST"]),
        Route(f"{one}/sessions/revoke", revoke_sessions, methods=["POST"]),
        Route(f"{one}/mfa/reset", reset_mfa, methods=["POST"]),
        Route(f"{one}/sessions", list_sessions, methods=["GET"]),
    ]
