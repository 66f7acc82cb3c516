"""The admin API's one door (issue 15, B4): :func:`admin_operation`.

Every route of an app's admin tree is declared with it::

    @admin_operation(Operation("List users", query=UserQuery, responses={200: UserPage}),
                     scope="admin:users:read")
    async def list_users(request: Request, caller: AdminCaller, conn: Connection) -> Response:
        ...

It declares the route (``admin=True``, tag ``admin``, 401/403 among its errors,
the scope as the OpenAPI security requirement) and, per request:

1. enters the app's router transaction ONCE (the view runs in it, so the
   change and its audit row commit together);
2. verifies the Bearer token with the app's OWN key set: issuer, audience,
   expiry, ``typ`` and ``app_id`` are pinned (B1), so a token of another app,
   or of the platform's issuer, is 401 ``invalid_token`` here;
3. requires either a client-credentials token of a confidential, enabled
   client of this app that still holds the scope, or a console-delegated token
   (:mod:`oneauth.admin.delegation`) whose operator grant still allows it;
   any user token (an admin user's too) is 403;
4. requires the route's scope in the token: else 403 ``insufficient_scope``
   with ``WWW-Authenticate: Bearer realm="<app>", error="insufficient_scope",
   scope="<scope>"`` (RFC 6750 section 3.1); a refusal of a genuine token of
   this app is audited (``admin.denied``);
5. for ``Operation(idempotent=True)``: the Idempotency-Key
   (:mod:`oneauth.admin.idempotency`).

The view gets the :class:`AdminCaller` and the connection, and records what it
did with :func:`audit` in the same transaction.

The platform tree (``/admin/v1/apps...``) has :func:`platform_operation`, the
same shape with the reserved platform app's key set and the platform scopes.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from oneauth import audit as audit_log
from oneauth.admin import delegation, idempotency
from oneauth.admin.scopes import APP_ADMIN_SCOPES, PLATFORM_SCOPES, scopes_for_role
from oneauth.apps.models import AppRecord
from oneauth.errors import InsufficientScope, InvalidToken, Unauthorized
from oneauth.http.contract import Operation, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.services import Services
from oneauth.tokens.issue import CLIENT_CREDENTIALS
from oneauth.verifier import AccessTokenClaims, VerificationError

__all__ = [
    "AdminCaller",
    "AdminView",
    "admin_operation",
    "audit",
    "authenticate_admin",
    "authenticate_platform",
    "platform_operation",
]

ActorType = Literal["client", "operator"]
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@dataclass(frozen=True, slots=True)
class AdminCaller:
    """Who is calling an admin route, as verified by the guard.

    ``client_id``: the acting client (``oneauth-console`` for a delegated token);
    ``scopes``: the admin scopes in force (a delegated token's narrowed to what
    the operator's grant allows now); ``operator_sub``: the operator for a
    console-delegated token, else None; ``actor_type``/``actor_id``: what the
    audit rows name (the client, or the operator)."""

    app: AppRecord
    client_id: str
    scopes: frozenset[str]
    operator_sub: str | None
    actor_type: ActorType
    actor_id: str
    meta: audit_log.RequestMeta = audit_log.SYSTEM
    token_id: str = ""
    operator_email: str | None = None


AdminView = Callable[[Request, AdminCaller, asyncpg.Connection], Awaitable[Response]]
View = Callable[[Request], Awaitable[Response]]


class _Denied(InsufficientScope):
    """A 403 for a genuine token of this app: audited before it is answered."""

    def __init__(
        self, detail: str, *, realm: str, scope: str, actor_type: str, actor_id: str
    ) -> None:
        super().__init__(
            detail,
            headers={
                **NO_STORE,
                "www-authenticate": (
                    f'{realm}, error="insufficient_scope", scope="{scope}",'
                    f' error_description="{detail}"'
                ),
            },
        )
        self.actor_type = actor_type
        self.actor_id = actor_id
        self.scope = scope


def _realm(app: AppRecord) -> str:
    return f'Bearer realm="{app.app_id}"'


def _invalid(app: AppRecord, detail: str) -> InvalidToken:
    challenge = f'{_realm(app)}, error="invalid_token", error_description="{detail}"'
    return InvalidToken(detail, headers={**NO_STORE, "www-authenticate": challenge})


def _verify(services: Services, app: AppRecord, token: str | None, keys: Any) -> AccessTokenClaims:
    if token is None:
        raise Unauthorized(
            "send an admin access token of this app: Authorization: Bearer <token>",
            headers={**NO_STORE, "www-authenticate": _realm(app)},
        )
    try:
        claims: AccessTokenClaims = keys.verifier.verify(token)
    except VerificationError as exc:
        raise _invalid(app, f"the access token failed the {exc.check} check") from None
    return claims


async def _client_caller(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    claims: AccessTokenClaims,
    scope: str,
    meta: audit_log.RequestMeta,
) -> AdminCaller:
    """A client-credentials token: of a confidential, enabled client of this app
    (looked up now: a disabled client's unexpired token stops at once) that
    still holds ``scope`` (narrowing a client's scopes takes effect at once)."""
    client = await services.clients.get(conn, app.app_id, claims.client_id)
    if (
        client is None
        or client.disabled
        or not client.is_confidential
        or CLIENT_CREDENTIALS not in client.grant_types
        or client.org_id is not None
    ):
        raise _invalid(app, "the token's client is unknown, disabled or not an admin client")
    scopes = claims.scopes & client.scopes
    if scope not in scopes:
        raise _Denied(
            f"this route needs the {scope} scope",
            realm=_realm(app),
            scope=scope,
            actor_type="client",
            actor_id=client.client_id,
        )
    return AdminCaller(
        app=app,
        client_id=client.client_id,
        scopes=frozenset(scopes),
        operator_sub=None,
        actor_type="client",
        actor_id=client.client_id,
        meta=meta,
        token_id=claims.jti,
    )


def _delegated_actor(services: Services, claims: AccessTokenClaims) -> dict[str, Any] | None:
    """The ``act`` claim of a console-delegated token, None for any other token."""
    if (
        claims.client_id != delegation.CONSOLE_CLIENT_ID
        or claims.sub != delegation.CONSOLE_CLIENT_ID
        or claims.raw.get("grant") != delegation.DELEGATION_GRANT
    ):
        return None
    act = claims.raw.get("act")
    if not isinstance(act, dict):
        return None
    sub = act.get("sub")
    if not isinstance(sub, str) or act.get("iss") != services.settings.issuer_for(
        delegation.PLATFORM_APP_ID
    ):
        return None
    try:
        uuid.UUID(sub)
    except ValueError:
        return None
    return act


async def _operator_caller(
    services: Services,
    app: AppRecord,
    claims: AccessTokenClaims,
    act: dict[str, Any],
    scope: str,
    meta: audit_log.RequestMeta,
) -> AdminCaller:
    sub = str(act["sub"])
    # Re-checked on every call: a revoked grant stops at once (not in 5 minutes).
    role = await delegation.operator_role(services.pool, sub, app.app_id)
    if role is None:
        raise _invalid(app, "the operator no longer has a grant for this app")
    scopes = claims.scopes & scopes_for_role(role)
    if scope not in scopes:
        raise _Denied(
            f"this route needs the {scope} scope",
            realm=_realm(app),
            scope=scope,
            actor_type="operator",
            actor_id=sub,
        )
    email = act.get("email")
    return AdminCaller(
        app=app,
        client_id=delegation.CONSOLE_CLIENT_ID,
        scopes=frozenset(scopes),
        operator_sub=sub,
        actor_type="operator",
        actor_id=sub,
        meta=meta,
        token_id=claims.jti,
        operator_email=email if isinstance(email, str) else None,
    )


async def authenticate_admin(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    token: str | None,
    scope: str,
    meta: audit_log.RequestMeta = audit_log.SYSTEM,
) -> AdminCaller:
    """The caller of an app admin route needing ``scope``, or the refusal (raised)."""
    keys = await services.keys.get(app, conn)
    claims = _verify(services, app, token, keys)
    if claims.is_client_token:
        return await _client_caller(services, app, conn, claims, scope, meta)
    act = _delegated_actor(services, claims)
    if act is not None:
        return await _operator_caller(services, app, claims, act, scope, meta)
    # A user's token, whatever its scopes or roles: admin scopes are never a user's.
    raise _Denied(
        "the admin API takes an admin client's token or the console's, never a user's",
        realm=_realm(app),
        scope=scope,
        actor_type="user",
        actor_id=claims.sub,
    )


async def authenticate_platform(
    services: Services,
    platform: AppRecord,
    conn: asyncpg.Connection,
    token: str | None,
    scope: str,
    meta: audit_log.RequestMeta = audit_log.SYSTEM,
) -> AdminCaller:
    """The caller of a platform route needing ``scope`` (SEAM: owner platform-api).

    ``platform`` is the reserved platform app's record and ``conn`` is in its
    transaction, so ``services.keys.get(platform, conn)`` is the platform
    issuer's key set: an app's token fails its issuer/app_id pins (401).
    Default body: a client-credentials token of a confidential, enabled client
    of the platform app holding ``scope`` (console-delegated tokens are never
    minted for the platform app; user tokens are 403)."""
    keys = await services.keys.get(platform, conn)
    claims = _verify(services, platform, token, keys)
    if not claims.is_client_token:
        raise _Denied(
            "the platform API takes a platform client's token, never a user's",
            realm=_realm(platform),
            scope=scope,
            actor_type="user",
            actor_id=claims.sub,
        )
    return await _client_caller(services, platform, conn, claims, scope, meta)


def audit(
    conn: asyncpg.Connection,
    caller: AdminCaller,
    event: str,
    outcome: audit_log.Outcome = "success",
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> Awaitable[None]:
    """Record an admin action in the app's audit log, in the caller's transaction.

    ``event``: ``admin.<area>.<verb>`` (``admin.user.disable``). The row's actor is
    the acting client, or the operator for a console-delegated token (its
    details name the console client and the operator's email)."""
    extra: dict[str, Any] = {"client_id": caller.client_id}
    if caller.operator_sub is not None:
        extra["via"] = "console"
        if caller.operator_email:
            extra["operator_email"] = caller.operator_email
    return audit_log.record(
        conn,
        event,
        outcome,
        caller.meta,
        actor_type=caller.actor_type,
        actor_id=caller.actor_id,
        target_type=target_type,
        target_id=target_id,
        details={**(details or {}), **extra},
    )


def _declare(op: Operation, scope: str, tag: str) -> Operation:
    errors = tuple(sorted({*op.errors, 401, 403} | ({409, 422} if op.idempotent else set())))
    return replace(op, admin=True, admin_scope=scope, tags=(tag,), errors=errors)


async def _run(
    request: Request,
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    caller: AdminCaller,
    op: Operation,
    view: AdminView,
    body: bytes,
) -> Response:
    key = idempotency.key_of(request) if op.idempotent else None
    if key is None:
        return await view(request, caller, conn)
    names = {"app_id": app.app_id, "actor_type": caller.actor_type, "actor_id": caller.actor_id}
    stored = await idempotency.claim(
        conn,
        services.box,
        key=key,
        fingerprint=idempotency.fingerprint(request.method, request.url.path, body),
        **names,
    )
    if stored is not None:
        return stored.response()
    response = await view(request, caller, conn)
    await idempotency.store(conn, services.box, response, key=key, **names)
    return response


def _guarded(
    op: Operation,
    scope: str,
    view: AdminView,
    resolve: Callable[[Request, Services], Awaitable[AppRecord]],
    authenticate: Callable[..., Awaitable[AdminCaller]],
) -> View:
    @functools.wraps(view)
    async def guarded(request: Request) -> Response:
        services = Services.of(request)
        app = await resolve(request, services)
        # Read before the transaction: a slow client must not hold a connection.
        body = await request.body() if request.method not in ("GET", "HEAD", "DELETE") else b""
        meta = request_meta(request, app.app_id, services.ip_hash_key)
        token = bearer_token(request)
        denied: _Denied
        async with services.router.enter(app) as conn:
            try:
                caller = await authenticate(services, app, conn, token, scope, meta)
            except _Denied as exc:
                await audit_log.record(
                    conn,
                    "admin.denied",
                    "denied",
                    meta,
                    actor_type=exc.actor_type,
                    actor_id=exc.actor_id,
                    target_type="route",
                    target_id=f"{request.method} {request.url.path}"[:300],
                    details={"scope": scope},
                )
                denied = exc  # answered after the commit, which keeps the row
            else:
                return await _run(request, services, app, conn, caller, op, view, body)
        raise denied

    return guarded


async def _app_of(request: Request, services: Services) -> AppRecord:
    # The app gate resolved it (unknown/suspended: 404 before any view, B3).
    return current_app(request)


async def _platform_app(request: Request, services: Services) -> AppRecord:
    return await services.registry.require_active(delegation.PLATFORM_APP_ID)


def admin_operation(op: Operation, *, scope: str) -> Callable[[AdminView], View]:
    """Declare an app admin route needing ``scope`` and guard it (see the module)."""
    if scope not in APP_ADMIN_SCOPES:
        raise ValueError(f"{scope!r} is not an app admin scope")
    declared = _declare(op, scope, "admin")

    def wrap(view: AdminView) -> View:
        return operation(declared)(_guarded(declared, scope, view, _app_of, authenticate_admin))

    return wrap


def platform_operation(
    op: Operation, *, scope: str = "platform:apps:read"
) -> Callable[[AdminView], View]:
    """Declare a platform route (``/admin/v1/...``, outside the app gate) needing
    ``scope``: tokens of the reserved platform app only (:func:`authenticate_platform`).
    The view runs in the PLATFORM app's transaction (its audit_log is the
    control-plane audit log: :func:`audit` writes there); ``caller.app`` is the
    platform app's record."""
    if scope not in PLATFORM_SCOPES:
        raise ValueError(f"{scope!r} is not a platform scope")
    declared = _declare(op, scope, "platform")

    def wrap(view: AdminView) -> View:
        return operation(declared)(
            _guarded(declared, scope, view, _platform_app, authenticate_platform)
        )

    return wrap
