"""Discovery (OIDC Discovery 1.0, RFC 8414) and the JWKS of each app, from memory.

The metadata document depends only on settings and the app's policy, so it is
rendered once per app and policy; the JWKS comes pre-rendered from the key
cache. A request on a warm cache touches no database.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.apps.models import AppRecord
from oneauth.apps.policy import AppPolicy, policy_of
from oneauth.db.naming import PLATFORM_APP_ID, is_reserved_app_id
from oneauth.errors import AppNotFound
from oneauth.http.contract import Operation, operation
from oneauth.http.gate import current_app
from oneauth.oauth.authorize import ORG_SCOPE, PROMPTS
from oneauth.oauth.client_assertion import ALGS as ASSERTION_ALGS
from oneauth.oauth.clients import USER_SCOPES
from oneauth.oauth.models import JwkSet, ProviderMetadata
from oneauth.services import Services
from oneauth.tokens.issue import ACR_VALUES
from oneauth.tokens.keystore import ID_TOKEN_ALG, JWKS_MAX_AGE

CACHEABLE = {"cache-control": f"public, max-age={JWKS_MAX_AGE}"}

# Endpoint paths relative to the issuer; the OIDC issue adds the browser ones.
ENDPOINTS: dict[str, str] = {
    "authorization_endpoint": "/oauth/authorize",
    "token_endpoint": "/oauth/token",
    "userinfo_endpoint": "/oauth/userinfo",
    "end_session_endpoint": "/oauth/logout",
    "revocation_endpoint": "/oauth/revoke",
    "introspection_endpoint": "/oauth/introspect",
    "jwks_uri": "/.well-known/jwks.json",
}


def metadata(issuer: str, policy: AppPolicy, endpoints: dict[str, str]) -> ProviderMetadata:
    """The document, as its model: a member the model does not name cannot be sent."""
    algs = sorted({policy.signing_alg, ID_TOKEN_ALG})
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    doc: dict[str, object] = {"issuer": issuer}
    doc.update({name: issuer + path for name, path in endpoints.items()})
    doc.update(
        {
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods[:3],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
            "code_challenge_methods_supported": ["S256"],
            # Issue 13: ``organization`` (and its form ``organization:<slug>``) asks for
            # org-scoped tokens; the authorization request's ``organization_id`` too.
            "scopes_supported": [*USER_SCOPES, ORG_SCOPE],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "amr",
                "acr",
                "sid",
                "email",
                "email_verified",
                "updated_at",
                "app_id",
                "org_id",
                "org_slug",
            ],
            "acr_values_supported": list(ACR_VALUES),
            # "Initiating User Registration via OpenID Connect 1.0" section 4.2.
            "prompt_values_supported": list(PROMPTS),
            "authorization_response_iss_parameter_supported": True,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        }
    )
    return msgspec.convert(doc, ProviderMetadata)


@lru_cache(maxsize=16384)  # one entry per active app: 10,000 apps fit
def _rendered(issuer: str, policy: AppPolicy, endpoints: tuple[tuple[str, str], ...]) -> bytes:
    return msgspec.json.encode(metadata(issuer, policy, dict(endpoints)))


def document(services: Services, app: AppRecord, endpoints: dict[str, str]) -> bytes:
    issuer = services.settings.issuer_for(app.app_id)
    return _rendered(issuer, policy_of(app), tuple(sorted(endpoints.items())))


_METADATA = Operation(
    "Provider metadata (OpenID Connect Discovery 1.0)",
    responses={200: ProviderMetadata},
    tags=("discovery",),
)


@operation(_METADATA)
async def openid_configuration(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    endpoints = getattr(request.app.state, "oauth_endpoints", ENDPOINTS)
    return Response(
        document(services, app, endpoints), media_type="application/json", headers=CACHEABLE
    )


@operation(
    replace(_METADATA, summary="Authorization server metadata (RFC 8414)", errors=(404, 503))
)
async def oauth_server_metadata(request: Request) -> Response:
    """RFC 8414 section 3: ``/.well-known/oauth-authorization-server/apps/{app_id}``
    (and ``.../platform`` for the control plane, whose issuer is ``/platform``)."""
    services = Services.of(request)
    app_id = request.path_params.get("app_id", PLATFORM_APP_ID)
    if request.path_params.get("app_id") is not None and is_reserved_app_id(app_id):
        raise AppNotFound()
    app = await services.registry.require_active(app_id)
    endpoints = getattr(request.app.state, "oauth_endpoints", ENDPOINTS)
    return Response(
        document(services, app, endpoints), media_type="application/json", headers=CACHEABLE
    )


@operation(
    Operation(
        "The app's public signing keys",
        responses={200: JwkSet},
        media_type="application/jwk-set+json",
        tags=("discovery",),
    )
)
async def jwks(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    keys = services.keys.cached(app.app_id)
    if keys is None:
        async with services.router.enter(app) as conn:
            keys = await services.keys.get(app, conn)
    return Response(keys.jwks, media_type="application/jwk-set+json", headers=CACHEABLE)


def routes() -> list[BaseRoute]:
    return [
        Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    ]
