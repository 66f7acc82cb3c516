"""``/openapi.json``: the OpenAPI 3.1 document, generated from the route declarations.

The routes are read from the running Starlette app, through every ``Mount``
(and the app gate around the per-app router), so a route cannot be missing
from the document: a route without a declaration (:mod:`oneauth.http.contract`)
still appears with its path, methods, path parameters and the error format its
prefix answers in. Schemas come from the msgspec models (JSON Schema 2020-12,
the dialect OpenAPI 3.1 uses).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from oneauth.http.contract import Operation, declared, operation

__all__ = [
    "OAuthErrorBody",
    "Problem",
    "document",
    "openapi_json",
    "schema_components",
    "walk",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The document's sections: the public (OAuth, discovery), first-party and admin APIs.
TAGS: tuple[tuple[str, str], ...] = (
    ("oauth", "OAuth 2.0 / OpenID Connect endpoints of an app (form bodies, RFC 6749 errors)"),
    ("discovery", "Provider metadata and signing keys"),
    ("pages", "Hosted pages of an app (HTML)"),
    ("app", "First-party API: the app"),
    ("password", "First-party API: email and password"),
    ("email", "First-party API: mailed links and codes"),
    ("user", "First-party API: the signed-in user"),
    ("consents", "First-party API: the user's consents to third-party clients"),
    ("mfa", "First-party API: second factors and the sign-in that needs one"),
    ("sessions", "First-party API: the user's sign-ins (sessions)"),
    ("orgs", "First-party API: the user's organizations, members and invitations"),
    (
        "federation",
        "Sign-in through the app's upstream identity providers (OpenID Connect, OAuth 2.0)"
        " and the user's linked identities",
    ),
    ("health", "Liveness and readiness"),
    ("meta", "This document and the metrics"),
    (
        "admin",
        "Admin API of one app (issue 15): /apps/{app_id}/admin/v1, an admin token of that"
        " app (client_credentials or console-delegated) with the route's admin scope",
    ),
    (
        "platform",
        "Platform API (issue 15): the app registry at /admin/v1, tokens of the reserved"
        " platform app only",
    ),
)


class Problem(msgspec.Struct, kw_only=True):
    """Problem details (RFC 9457), the first-party API's one error format."""

    type: Annotated[str, msgspec.Meta(pattern=r"^urn:oneauth:error:[a-z_]+$")]
    title: str
    status: Annotated[int, msgspec.Meta(ge=400, le=599)]
    code: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z_]*$")]
    detail: str
    request_id: str | msgspec.UnsetType = msgspec.UNSET
    field: str | msgspec.UnsetType = msgspec.UNSET
    retry_after: int | msgspec.UnsetType = msgspec.UNSET
    # mfa_required / mfa_enrollment_required: the flow to continue, the factors
    flow_token: str | msgspec.UnsetType = msgspec.UNSET
    factors: list[str] | msgspec.UnsetType = msgspec.UNSET
    # signup under mfa=required: the new user, and the signup's verification flow token
    user: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    verification_flow_token: str | msgspec.UnsetType = msgspec.UNSET
    # insufficient_user_authentication (RFC 9470): what a new sign-in must meet
    max_age: int | msgspec.UnsetType = msgspec.UNSET
    acr_values: str | msgspec.UnsetType = msgspec.UNSET
    # org_permission_required (issue 13): the org permission the caller lacks
    permission: str | msgspec.UnsetType = msgspec.UNSET


OAuthErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_token",
    "insufficient_scope",
    "temporarily_unavailable",
    "access_denied",
    "server_error",
    "login_required",
    "consent_required",
    "interaction_required",
    "unsupported_response_type",
]


class OAuthErrorBody(msgspec.Struct, forbid_unknown_fields=True):
    """OAuth endpoint error (RFC 6749 section 5.2)."""

    error: OAuthErrorCode
    error_description: str


def _routes_of(app: ASGIApp) -> list[BaseRoute]:
    # A Mount may wrap its router in plain ASGI layers (the app gate): unwrap them.
    seen: Any = app
    while not hasattr(seen, "routes"):
        seen = getattr(seen, "app", None)
        if seen is None:
            raise RuntimeError(f"cannot find the routes behind {app!r}")
    routes: list[BaseRoute] = seen.routes
    return routes


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str, Route]]:
    """(method, path template, route) for every route under ``routes``; HEAD,
    which Starlette adds beside GET, is left out."""
    for route in routes:
        if isinstance(route, Mount):
            yield from walk(_routes_of(route.app), prefix + route.path)
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield method, prefix + route.path, route


def _error_format(path: str, op: Operation | None) -> str:
    if op is not None:
        return op.error_format
    if "/oauth/" in path and not path.endswith(("/authorize", "/continue", "/logout")):
        return "oauth"
    if "/v1/" in path or path.startswith("/.well-known/"):
        return "problem"
    return "html"


_ERROR_CONTENT = {
    "problem": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    "oauth": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthErrorBody"}}},
    "html": {"text/html": {"schema": {"type": "string"}}},
}
_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No content",
    302: "Redirect",
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found (an unknown app, among others)",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed (a stale If-Match)",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    428: "Precondition required (If-Match)",
    429: "Too many requests",
    503: "Unavailable (the app or the database)",
}
# What every route under /apps/{app_id} can answer before its view runs: the app
# gate (404 unknown app, 503 suspended) and the input guard (400 on a bad URL).
_ALWAYS = (400, 404, 503)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    # A query parameter is absent or a string: "optional" is required: false, not null.
    options = [o for o in schema.get("anyOf", ()) if o != {"type": "null"}]
    return options[0] if len(options) == 1 else schema


def _ref(model: Any) -> dict[str, Any]:
    if model is None:
        return {}
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(method: str, path: str, route: Route, op: Operation | None) -> dict[str, Any]:
    params = re.findall(r"{(\w+)(?::\w+)?}", path)
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "summary": op.summary if op else (route.endpoint.__doc__ or route.name).split("\n")[0],
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            }
            for name in params
        ],
    }
    if op is None:
        out["x-oneauth-declared"] = False
    responses: dict[str, Any] = {}
    if op is not None:
        if op.tags:
            out["tags"] = list(op.tags)
        if op.bearer:
            out["security"] = [{"bearer": []}]
        if op.admin:
            out["security"] = [{"adminToken": [op.admin_scope] if op.admin_scope else []}]
        if op.idempotent:
            out["parameters"].append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "replays the first answer for the same key and body (24 h)",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            )
        if op.if_match:
            out["parameters"].append(
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": True,
                    "description": "the ETag of the current resource (428 without, 412 stale)",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                }
            )
        if op.body is not None and method != "GET":
            out["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        if op.form is not None and method != "GET":
            out["requestBody"] = {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": _ref(op.form)}},
            }
        if op.query is not None and method == "GET":
            _, found = msgspec.json.schema_components([op.query], ref_template="{name}")
            own = found[op.query.__name__]
            required = set(own.get("required", ()))
            out["parameters"] += [
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": _not_null(schema),
                }
                for name, schema in own["properties"].items()
            ]
        for status, model in op.responses.items():
            entry: dict[str, Any] = {"description": _REASONS.get(status, "")}
            if model is dict:  # a free-form JSON object (this document)
                entry["content"] = {op.media_type: {"schema": {"type": "object"}}}
            elif model is str:  # a page, a stylesheet
                entry["content"] = {op.media_type: {"schema": {"type": "string"}}}
            elif model is not None:
                entry["content"] = {op.media_type: {"schema": _ref(model)}}
            responses[str(status)] = entry
    else:
        responses["default"] = {"description": "not yet declared in oneauth.http.contract"}
    fmt = _error_format(path, op)
    errors = set(op.errors if op else ()) | (set(_ALWAYS) if "{app_id}" in path else set())
    for status in sorted(errors):
        responses.setdefault(
            str(status),
            {"description": _REASONS.get(status, "Error"), "content": _ERROR_CONTENT[fmt]},
        )
    out["responses"] = responses
    return out


def schema_components(models: Iterable[Any], ref_template: str) -> dict[str, Any]:
    """The JSON Schemas of ``models`` and of what they refer to, by name; a model's
    ``json_schema_extra`` (what its types cannot say) merged into its own."""
    ordered = sorted(models, key=lambda m: m.__name__)
    _, components = msgspec.json.schema_components(ordered, ref_template=ref_template)
    for name, schema in components.items():
        for model in ordered:
            if model.__name__ == name:
                schema.update(getattr(model, "json_schema_extra", {}))
    return components


def document(
    routes: list[BaseRoute], *, title: str = "oneauth", version: str = "0.1.0"
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    models: set[Any] = {Problem, OAuthErrorBody}
    for method, path, route in walk(routes):
        op = declared(route.endpoint)
        if op is not None:
            found = (op.body, op.form, *op.responses.values())
            models |= {m for m in found if isinstance(m, type) and issubclass(m, msgspec.Struct)}
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, route, op)
    components = schema_components(models, "#/components/schemas/{name}")
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": DIALECT,
        "info": {"title": title, "version": version},
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                # Reserved for the admin API (issue 15): Operation(admin=True).
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "an access token of the app itself carrying the route's"
                    " admin scope: a client_credentials token of one of its confidential"
                    " clients, or a console-delegated token (issue 15); platform routes"
                    " take tokens of the reserved platform app",
                },
            },
        },
    }


@operation(Operation("This document", responses={200: dict}, tags=("meta",)))
async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document of this deployment's routes."""
    body = getattr(request.app.state, "openapi", None)
    if body is None:  # built once: the routes do not change while the app runs
        body = msgspec.json.encode(document(request.app.routes))
        request.app.state.openapi = body
    return Response(body, media_type="application/json")
