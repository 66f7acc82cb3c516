"""An app's OAuth clients in its admin API (issue 15).

    GET|POST    /clients                        admin:clients:read | write
    GET|PATCH   /clients/{client_id}
    POST        /clients/{client_id}/disable    refused everywhere from now on
    POST        /clients/{client_id}/secrets    rotate: a new secret, shown once

A confidential client's secret is in the answer of the create (and of a rotation)
and nowhere else: it is stored as SHA-256 (O5), and no GET can show it. A caller
hands out no admin scope it does not hold itself: ``admin:clients:write`` alone
cannot mint a client with ``admin:users:write`` (B4). Views call the same
repository as ``oneauth clients`` (:mod:`oneauth.oauth.clients`: one validation,
one merge of changes); each change is audited with the acting client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.admin import guard
from oneauth.admin.app_api._rest import NO_STORE, PREFIX
from oneauth.admin.guard import AdminCaller, admin_operation
from oneauth.admin.models_rest import (
    AdminClient,
    AdminClients,
    ClientCreate,
    ClientCreated,
    ClientSecret,
    ClientUpdate,
    ListQuery,
    SecretRotate,
)
from oneauth.admin.pagination import decode_cursor, next_cursor, query
from oneauth.errors import ClientNotFound, InsufficientScope, ValidationFailed
from oneauth.http.contract import Operation, json_body, json_response
from oneauth.oauth import clients

INPUT = (413, 415, 422)


def admin_client(c: clients.Client) -> AdminClient:
    return AdminClient(
        client_id=c.client_id,
        name=c.name,
        kind=c.kind,
        first_party=c.first_party,
        redirect_uris=list(c.redirect_uris),
        post_logout_redirect_uris=list(c.post_logout_redirect_uris),
        grant_types=sorted(c.grant_types),
        scopes=sorted(c.scopes),
        token_endpoint_auth_method=c.token_endpoint_auth_method,
        access_token_ttl=c.access_token_ttl,
        refresh_token_ttl=c.refresh_token_ttl,
        created_at=c.created_at.isoformat(),
        disabled=c.disabled,
        org_id=c.org_id,
    )


def _no_escalation(caller: AdminCaller, scopes: list[str] | None) -> None:
    """Admin scopes on a client only within the caller's own (B4: least privilege)."""
    beyond = sorted(s for s in scopes or () if s.startswith("admin:") and s not in caller.scopes)
    if beyond:
        raise InsufficientScope(
            "a client may be given only admin scopes the caller holds: " + ", ".join(beyond),
            extra={"field": "scopes"},
        )


def _refused(exc: clients.ClientError) -> ValidationFailed:
    return ValidationFailed(str(exc))


async def _require(conn: asyncpg.Connection, client_id: str) -> clients.Client:
    found = await clients.get_async(conn, client_id)
    if found is None:
        raise ClientNotFound(extra={"field": "client_id"})
    return found


@admin_operation(
    Operation(
        "List the app's clients (keyset pages by creation); no secret ever",
        query=ListQuery,
        responses={200: AdminClients},
        errors=(422,),
    ),
    scope="admin:clients:read",
)
async def list_clients(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    q = query(request, ListQuery)
    after = decode_cursor(q.cursor, {"created_at": datetime, "client_id": str})
    found = await clients.page_async(
        conn,
        after=(after["created_at"], after["client_id"]) if after else None,
        limit=q.limit + 1,
    )
    keys: list[dict[str, Any]] = [
        {"created_at": c.created_at, "client_id": c.client_id} for c in found
    ]
    return json_response(
        AdminClients(
            items=[admin_client(c) for c in found[: q.limit]],
            next_cursor=next_cursor(keys, q.limit, "created_at", "client_id"),
        ),
        headers=NO_STORE,
    )


@admin_operation(
    Operation(
        "Register a client; a confidential client's secret is in this answer only",
        body=ClientCreate,
        responses={201: ClientCreated},
        errors=(403, *INPUT),
        idempotent=True,
    ),
    scope="admin:clients:write",
)
async def create_client(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    data = await json_body(request, ClientCreate)
    _no_escalation(caller, data.scopes)
    spec = clients.new_spec(
        name=data.name,
        confidential=data.confidential,
        grant_types=data.grant_types,
        scopes=data.scopes,
        redirect_uris=data.redirect_uris,
        post_logout_redirect_uris=data.post_logout_redirect_uris,
        first_party=data.first_party,
        auth_method=data.auth_method,
        access_token_ttl=data.access_token_ttl,
        refresh_token_ttl=data.refresh_token_ttl,
        org_id=data.org_id,
    )
    try:
        made, secret = await clients.create_async(conn, caller.app.app_id, spec)
    except clients.ClientError as exc:
        raise _refused(exc) from None
    await guard.audit(
        conn,
        caller,
        "admin.client.create",
        target_type="client",
        target_id=made.client_id,
        details={
            "kind": made.kind,
            "grant_types": sorted(made.grant_types),
            "scopes": sorted(made.scopes),
        },
    )
    return json_response(
        ClientCreated(client=admin_client(made), client_secret=secret), 201, headers=NO_STORE
    )


@admin_operation(
    Operation("One client (never its secret)", responses={200: AdminClient}, errors=(404,)),
    scope="admin:clients:read",
)
async def show_client(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    found = await _require(conn, request.path_params["client_id"])
    return json_response(admin_client(found), headers=NO_STORE)


async def _update(
    conn: asyncpg.Connection, caller: AdminCaller, client_id: str, event: str, **changes: Any
) -> clients.Client:
    await _require(conn, client_id)
    try:
        changed = await clients.update_async(conn, caller.app.app_id, client_id, **changes)
    except clients.ClientError as exc:
        raise _refused(exc) from None
    await guard.audit(
        conn,
        caller,
        event,
        target_type="client",
        target_id=client_id,
        details={"changed": sorted(changes)},
    )
    return changed


@admin_operation(
    Operation(
        "Change a client; a list given replaces the whole list",
        body=ClientUpdate,
        responses={200: AdminClient},
        errors=(403, 404, *INPUT),
    ),
    scope="admin:clients:write",
)
async def update_client(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    data = await json_body(request, ClientUpdate)
    _no_escalation(caller, data.scopes)
    changes = {
        name: getattr(data, name)
        for name in data.__struct_fields__
        if getattr(data, name) is not None
    }
    changed = await _update(
        conn, caller, request.path_params["client_id"], "admin.client.update", **changes
    )
    return json_response(admin_client(changed), headers=NO_STORE)


@admin_operation(
    Operation(
        "Disable a client: refused at every endpoint from now on",
        responses={200: AdminClient},
        errors=(404,),
    ),
    scope="admin:clients:write",
)
async def disable_client(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    changed = await _update(
        conn, caller, request.path_params["client_id"], "admin.client.disable", disabled=True
    )
    return json_response(admin_client(changed), headers=NO_STORE)


@admin_operation(
    Operation(
        "Rotate a client's secret: the new one is in this answer only; older ones keep"
        " working overlap_seconds",
        body=SecretRotate,
        responses={200: ClientSecret},
        errors=(404, *INPUT),
    ),
    scope="admin:clients:write",
)
async def rotate_secret(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    data = await json_body(request, SecretRotate)
    found = await _require(conn, request.path_params["client_id"])
    try:
        secret = await clients.rotate_secret_async(
            conn, caller.app.app_id, found.client_id, overlap_seconds=data.overlap_seconds
        )
    except clients.ClientError as exc:
        raise _refused(exc) from None
    await guard.audit(
        conn,
        caller,
        "admin.client.rotate_secret",
        target_type="client",
        target_id=found.client_id,
        details={"overlap_seconds": data.overlap_seconds},
    )
    return json_response(
        ClientSecret(
            client_id=found.client_id,
            client_secret=secret,
            older_secrets_expire_in=data.overlap_seconds,
        ),
        headers=NO_STORE,
    )


def routes() -> list[BaseRoute]:
    p = PREFIX
    return [
        Route(f"{p}/clients", list_clients, methods=["GET"]),
        Route(f"{p}/clients", create_client, methods=["POST"]),
        Route(f"{p}/clients/{{client_id}}", show_client, methods=["GET"]),
        Route(f"{p}/clients/{{client_id}}", update_client, methods=["PATCH"]),
        Route(f"{p}/clients/{{client_id}}/disable", disable_client, methods=["POST"]),
        Route(f"{p}/clients/{{client_id}}/secrets", rotate_secret, methods=["POST"]),
    ]
