"""An app's upstream identity providers in its admin API (issue 15).

    GET|POST          /providers          admin:providers:read | write
    GET|PATCH|DELETE  /providers/{id}

The client secret (or signing key) is write-only: it is accepted by the create and
by a PATCH (which re-seals it) and is in no answer, sealed at rest with the app and
the provider bound in (A2). Views call the same rules as ``oneauth providers``
(:mod:`oneauth.federation.providers`: one resolution of presets, one merge of
changes), audited with the acting client.
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
    AdminProvider,
    AdminProviders,
    ListQuery,
    ProviderCreate,
    ProviderUpdate,
)
from oneauth.admin.pagination import decode_cursor, next_cursor, query
from oneauth.errors import ProviderNotFound, ValidationFailed
from oneauth.federation import providers
from oneauth.http.contract import Operation, json_body, json_response
from oneauth.services import Services

INPUT = (413, 415, 422)


def admin_provider(p: providers.Provider, issuer: str) -> AdminProvider:
    # Provider.public() is the one secret-free view (the CLI prints it, the audit keeps it).
    body = p.public(issuer)
    return AdminProvider(**body)


def _actor(caller: AdminCaller) -> tuple[str, str | None]:
    return caller.actor_type, caller.actor_id


@admin_operation(
    Operation(
        "List the app's upstream identity providers (never a secret)",
        query=ListQuery,
        responses={200: AdminProviders},
        errors=(422,),
    ),
    scope="admin:providers:read",
)
async def list_providers(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    q = query(request, ListQuery)
    after = decode_cursor(q.cursor, {"created_at": datetime, "id": str})
    found = await providers.page_async(
        conn, after=(after["created_at"], after["id"]) if after else None, limit=q.limit + 1
    )
    issuer = Services.of(request).settings.issuer_for(caller.app.app_id)
    keys: list[dict[str, Any]] = [{"created_at": p.created_at, "id": p.id} for p in found]
    return json_response(
        AdminProviders(
            items=[admin_provider(p, issuer) for p in found[: q.limit]],
            next_cursor=next_cursor(keys, q.limit, "created_at", "id"),
        ),
        headers=NO_STORE,
    )


@admin_operation(
    Operation(
        "Add an upstream identity provider; the answer names the callback URL to register"
        " upstream (the secret is write-only)",
        body=ProviderCreate,
        responses={201: AdminProvider},
        errors=INPUT,
        idempotent=True,
    ),
    scope="admin:providers:write",
)
async def create_provider(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    data = await json_body(request, ProviderCreate)
    services = Services.of(request)
    spec = providers.ProviderSpec(
        kind=data.kind,
        name=data.name,
        client_id=data.client_id,
        issuer=data.issuer,
        scopes=tuple(data.scopes) if data.scopes is not None else None,
        button_label=data.button_label,
        auth_method=data.auth_method,
        auth_params=dict(data.auth_params),
        claim_mapping={str(k): v for k, v in data.claim_mapping.items()},
        enabled=data.enabled,
        jit_signup=data.jit_signup,
        linking=data.linking,
        trust_email_verified=data.trust_email_verified,
        trust_amr=data.trust_amr,
        keep_tokens=data.keep_tokens,
    )
    try:
        made = await providers.create_async(
            conn,
            services.box,
            caller.app.app_id,
            spec,
            data.client_secret,
            actor=_actor(caller),
            allow_http=not services.settings.is_production,
            meta=caller.meta,
        )
    except providers.ProviderError as exc:
        raise ValidationFailed(str(exc)) from None
    await guard.audit(
        conn, caller, "admin.provider.create", target_type="identity_provider", target_id=made.id
    )
    issuer = services.settings.issuer_for(caller.app.app_id)
    return json_response(admin_provider(made, issuer), 201, headers=NO_STORE)


@admin_operation(
    Operation("One provider (never its secret)", responses={200: AdminProvider}, errors=(404,)),
    scope="admin:providers:read",
)
async def show_provider(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    found = await providers.get_async(conn, request.path_params["provider_id"])
    if found is None:
        raise ProviderNotFound(extra={"field": "provider_id"})
    issuer = Services.of(request).settings.issuer_for(caller.app.app_id)
    return json_response(admin_provider(found, issuer), headers=NO_STORE)


@admin_operation(
    Operation(
        "Change a provider; a client_secret given is sealed in place of the old one",
        body=ProviderUpdate,
        responses={200: AdminProvider},
        errors=(404, *INPUT),
    ),
    scope="admin:providers:write",
)
async def update_provider(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    data = await json_body(request, ProviderUpdate)
    services = Services.of(request)
    changes = {
        name: getattr(data, name)
        for name in data.__struct_fields__
        if name != "client_secret" and getattr(data, name) is not None
    }
    provider_id = request.path_params["provider_id"]
    try:
        changed = await providers.update_async(
            conn,
            services.box,
            caller.app.app_id,
            provider_id,
            actor=_actor(caller),
            secret=data.client_secret,
            allow_http=not services.settings.is_production,
            meta=caller.meta,
            **changes,
        )
    except providers.ProviderError as exc:
        raise ValidationFailed(str(exc)) from None
    if changed is None:
        raise ProviderNotFound(extra={"field": "provider_id"})
    fields = sorted(changes) + (["client_secret"] if data.client_secret is not None else [])
    await guard.audit(
        conn,
        caller,
        "admin.provider.update",
        target_type="identity_provider",
        target_id=changed.id,
        details={"changed": fields},
    )
    issuer = services.settings.issuer_for(caller.app.app_id)
    return json_response(admin_provider(changed, issuer), headers=NO_STORE)


@admin_operation(
    Operation(
        "Delete a provider and the identities linked through it",
        responses={204: None},
        errors=(404,),
    ),
    scope="admin:providers:write",
)
async def delete_provider(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    provider_id = request.path_params["provider_id"]
    if not await providers.delete_async(conn, provider_id, actor=_actor(caller), meta=caller.meta):
        raise ProviderNotFound(extra={"field": "provider_id"})
    await guard.audit(
        conn,
        caller,
        "admin.provider.delete",
        target_type="identity_provider",
        target_id=provider_id,
    )
    return Response(status_code=204, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    p = PREFIX
    return [
        Route(f"{p}/providers", list_providers, methods=["GET"]),
        Route(f"{p}/providers", create_provider, methods=["POST"]),
        Route(f"{p}/providers/{{provider_id}}", show_provider, methods=["GET"]),
        Route(f"{p}/providers/{{provider_id}}", update_provider, methods=["PATCH"]),
        Route(f"{p}/providers/{{provider_id}}", delete_provider, methods=["DELETE"]),
    ]
