"""An app's webhooks in its admin API (issue 15): ``/apps/{app_id}/admin/v1/webhooks``.

    GET    /webhooks                        list endpoints (keyset pages)
    POST   /webhooks                        create (Idempotency-Key); the secret shown once
    GET    /webhooks/event-types            the event catalogue
    GET    /webhooks/{endpoint_id}          show (never the secret)
    PATCH  /webhooks/{endpoint_id}          update url, event types, description, enabled
    DELETE /webhooks/{endpoint_id}          delete (with its deliveries)
    POST   /webhooks/{endpoint_id}/secret   rotate the secret (shown once)
    GET    /webhooks/{endpoint_id}/deliveries   ?status=&cursor=&limit= newest first
    POST   /webhooks/deliveries/{delivery_id}/replay   queue the event again (a new row)

Reads need ``admin:webhooks:read``, changes ``admin:webhooks:write``. Views are
thin: parse, call :mod:`oneauth.webhooks.endpoints`, serialize; every change is
audited (``admin.webhook.*``) in the same transaction. Everything runs in the
app's own schema, so an id of another app's endpoint or delivery is a 404.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.admin import guard
from oneauth.admin.guard import AdminCaller, admin_operation
from oneauth.admin.models import (
    PageQuery,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookDeliveryQuery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
    WebhookEventTypeInfo,
    WebhookEventTypes,
    WebhookSecret,
)
from oneauth.admin.pagination import decode_cursor, encode_cursor, query
from oneauth.errors import NotFound
from oneauth.http.contract import Operation, json_body, json_response
from oneauth.services import Services
from oneauth.webhooks import EVENT_TYPES, endpoints

PREFIX = "/admin/v1/webhooks"
NO_STORE = {"cache-control": "no-store"}
READ = "admin:webhooks:read"
WRITE = "admin:webhooks:write"
INPUT_ERRORS = (413, 415, 422)


def _endpoint(e: endpoints.Endpoint) -> WebhookEndpoint:
    rotated = e.secret_rotated_at
    return WebhookEndpoint(
        id=e.id,
        url=e.url,
        event_types=list(e.event_types),
        enabled=e.enabled,
        description=e.description,
        created_at=e.created_at.isoformat(),
        updated_at=e.updated_at.isoformat(),
        secret_rotated_at=rotated.isoformat() if rotated else None,
    )


def _delivery(d: endpoints.Delivery) -> WebhookDelivery:
    return WebhookDelivery(
        id=d.id,
        event_id=d.event_id,
        endpoint_id=d.endpoint_id,
        event_type=d.event_type,
        status=d.status,  # type: ignore[arg-type]
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at.isoformat(),
        created_at=d.created_at.isoformat(),
        payload=d.payload,
        last_status=d.last_status,
        last_error=d.last_error,
        replay_of=d.replay_of,
        delivered_at=d.delivered_at.isoformat() if d.delivered_at else None,
    )


def _endpoint_id(request: Request) -> str:
    value = str(request.path_params["endpoint_id"])
    if not value.startswith("whe_") or len(value) > 80:
        raise NotFound("no such webhook endpoint")
    return value


async def _require(conn: asyncpg.Connection, request: Request) -> endpoints.Endpoint:
    found = await endpoints.get(conn, _endpoint_id(request))
    if found is None:
        raise NotFound("no such webhook endpoint")
    return found


@admin_operation(
    Operation(
        "List the app's webhook endpoints (keyset pages)",
        query=PageQuery,
        responses={200: WebhookEndpointPage},
        errors=(422,),
    ),
    scope=READ,
)
async def list_endpoints(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    q = query(request, PageQuery)
    keys = decode_cursor(q.cursor, {"created_at": datetime, "id": str})
    after = (keys["created_at"], keys["id"]) if keys else None
    rows = await endpoints.list_page(conn, after=after, limit=q.limit + 1)
    cursor = None
    if len(rows) > q.limit:
        last = rows[q.limit - 1]
        cursor = encode_cursor({"created_at": last.created_at, "id": last.id})
    page = WebhookEndpointPage(items=[_endpoint(e) for e in rows[: q.limit]], next_cursor=cursor)
    return json_response(page, headers=NO_STORE)


@admin_operation(
    Operation(
        "Create a webhook endpoint; its signing secret is shown this once",
        body=WebhookEndpointCreate,
        responses={201: WebhookEndpointCreated},
        errors=INPUT_ERRORS,
        idempotent=True,
    ),
    scope=WRITE,
)
async def create_endpoint(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    body = await json_body(request, WebhookEndpointCreate)
    services = Services.of(request)
    endpoint, secret = await endpoints.create(
        conn,
        services.box,
        services.settings,
        caller.app.app_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
    )
    await guard.audit(
        conn,
        caller,
        "admin.webhook.create",
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        details={"event_types": list(endpoint.event_types), "enabled": endpoint.enabled},
    )
    created = WebhookEndpointCreated(endpoint=_endpoint(endpoint), secret=secret)
    return json_response(created, 201, headers=NO_STORE)


@admin_operation(
    Operation("The webhook event types", responses={200: WebhookEventTypes}),
    scope=READ,
)
async def event_types(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    items = [WebhookEventTypeInfo(type=t, description=d) for t, d in EVENT_TYPES.items()]
    return json_response(WebhookEventTypes(items=items))


@admin_operation(
    Operation("Show a webhook endpoint", responses={200: WebhookEndpoint}, errors=(404,)),
    scope=READ,
)
async def show_endpoint(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    return json_response(_endpoint(await _require(conn, request)), headers=NO_STORE)


@admin_operation(
    Operation(
        "Update a webhook endpoint (url, event types, description, enabled)",
        body=WebhookEndpointUpdate,
        responses={200: WebhookEndpoint},
        errors=(404, *INPUT_ERRORS),
    ),
    scope=WRITE,
)
async def update_endpoint(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    body = await json_body(request, WebhookEndpointUpdate)
    endpoint_id = _endpoint_id(request)
    changes = {
        name: getattr(body, name)
        for name in ("url", "event_types", "description", "enabled")
        if getattr(body, name) is not msgspec.UNSET
    }
    updated = await endpoints.update(
        conn, Services.of(request).settings, caller.app.app_id, endpoint_id, **changes
    )
    if updated is None:
        raise NotFound("no such webhook endpoint")
    await guard.audit(
        conn,
        caller,
        "admin.webhook.update",
        target_type="webhook_endpoint",
        target_id=endpoint_id,
        details={"changed": sorted(changes)},
    )
    return json_response(_endpoint(updated), headers=NO_STORE)


@admin_operation(
    Operation("Delete a webhook endpoint", responses={204: None}, errors=(404,)),
    scope=WRITE,
)
async def delete_endpoint(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    endpoint_id = _endpoint_id(request)
    if not await endpoints.delete(conn, caller.app.app_id, endpoint_id):
        raise NotFound("no such webhook endpoint")
    await guard.audit(
        conn, caller, "admin.webhook.delete", target_type="webhook_endpoint", target_id=endpoint_id
    )
    return Response(status_code=204, headers=NO_STORE)


@admin_operation(
    Operation(
        "Rotate a webhook endpoint's signing secret; the new one is shown this once",
        responses={200: WebhookSecret},
        errors=(404,),
    ),
    scope=WRITE,
)
async def rotate_secret(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    endpoint_id = _endpoint_id(request)
    secret = await endpoints.rotate_secret(
        conn, Services.of(request).box, caller.app.app_id, endpoint_id
    )
    if secret is None:
        raise NotFound("no such webhook endpoint")
    await guard.audit(
        conn,
        caller,
        "admin.webhook.rotate_secret",
        target_type="webhook_endpoint",
        target_id=endpoint_id,
    )
    return json_response(WebhookSecret(endpoint_id=endpoint_id, secret=secret), headers=NO_STORE)


@admin_operation(
    Operation(
        "List a webhook endpoint's deliveries, newest first (?status=)",
        query=WebhookDeliveryQuery,
        responses={200: WebhookDeliveryPage},
        errors=(404, 422),
    ),
    scope=READ,
)
async def list_deliveries(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    q = query(request, WebhookDeliveryQuery)
    endpoint = await _require(conn, request)
    keys = decode_cursor(q.cursor, {"id": int})
    rows = await endpoints.list_deliveries(
        conn,
        endpoint.id,
        status=q.status,
        before=keys["id"] if keys else None,
        limit=q.limit + 1,
    )
    cursor = encode_cursor({"id": rows[q.limit - 1].id}) if len(rows) > q.limit else None
    page = WebhookDeliveryPage(items=[_delivery(d) for d in rows[: q.limit]], next_cursor=cursor)
    return json_response(page, headers=NO_STORE)


@admin_operation(
    Operation(
        "Replay a webhook delivery: its event is queued to its endpoint again",
        responses={202: WebhookDelivery},
        errors=(404,),
    ),
    scope=WRITE,
)
async def replay_delivery(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    raw = str(request.path_params["delivery_id"])
    delivery_id = int(raw) if raw.isdigit() and len(raw) <= 18 else None
    replayed = (
        None
        if delivery_id is None
        else await endpoints.replay(conn, caller.app.app_id, delivery_id)
    )
    if replayed is None:
        raise NotFound("no such webhook delivery")
    await guard.audit(
        conn,
        caller,
        "admin.webhook.replay",
        target_type="webhook_delivery",
        target_id=str(delivery_id),
        details={"new_delivery_id": replayed.id, "endpoint_id": replayed.endpoint_id},
    )
    return json_response(_delivery(replayed), 202, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route(PREFIX, list_endpoints, methods=["GET"]),
        Route(PREFIX, create_endpoint, methods=["POST"]),
        Route(f"{PREFIX}/event-types", event_types, methods=["GET"]),
        Route(f"{PREFIX}/deliveries/{{delivery_id}}/replay", replay_delivery, methods=["POST"]),
        Route(f"{PREFIX}/{{endpoint_id}}", show_endpoint, methods=["GET"]),
        Route(f"{PREFIX}/{{endpoint_id}}", update_endpoint, methods=["PATCH"]),
        Route(f"{PREFIX}/{{endpoint_id}}", delete_endpoint, methods=["DELETE"]),
        Route(f"{PREFIX}/{{endpoint_id}}/secret", rotate_secret, methods=["POST"]),
        Route(f"{PREFIX}/{{endpoint_id}}/deliveries", list_deliveries, methods=["GET"]),
    ]
