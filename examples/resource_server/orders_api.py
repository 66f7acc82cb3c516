"""A FastAPI resource server that trusts oneauth's access tokens: oneauth_verifier's
FastAPI dependency checks each request's bearer token (signature from the issuer's
JWKS, ``iss``, ``aud``, ``exp``, ``app_id``) and then what the route demands: an
app role, a permission, membership of the organization in the URL with an org role,
or a scope for machine clients.

Routes:

- ``GET /me``: any valid token of the app; who is calling.
- ``GET /invoices``: the app role ``billing``.
- ``GET /orgs/{org_id}/orders``: a member of that org (the token's ``org_id`` must be
  the one in the path: a member of another org gets 403).
- ``POST /orgs/{org_id}/orders``: that org, with the org role ``admin``.
- ``GET /reports``: the scope ``reports:read`` (a client-credentials token).

Run against ``make run`` (see README.md here)::

    OIDC_ISSUER=http://127.0.0.1:8000/apps/demo uvicorn orders_api:app --port 8002
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from oneauth_verifier import AccessTokenClaims, Verifier
from oneauth_verifier.fastapi import install, require


class NewOrder(BaseModel):
    item: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=1000)


def create_app(*, issuer: str, audience: str | None = None, app_id: str | None = None) -> FastAPI:
    """The API for one oneauth app. ``audience`` defaults to the app's API audience
    (``{issuer}/api``), ``app_id`` to the issuer's last path segment."""
    app = FastAPI(title="Orders API (a oneauth example)")
    install(
        app,
        Verifier(
            issuer=issuer,
            audience=audience or f"{issuer}/api",
            app_id=app_id or urlsplit(issuer).path.rstrip("/").rsplit("/", 1)[-1],
        ),
    )
    # In memory, per org: an example, not a database.
    orders: dict[str, list[dict[str, Any]]] = defaultdict(list)

    @app.get("/me")
    async def me(claims: AccessTokenClaims = Depends(require())) -> dict[str, Any]:
        return {
            "sub": claims.sub,
            "client_token": claims.is_client_token,
            "roles": sorted(claims.roles),
            "org_id": claims.org_id,
            "org_roles": sorted(claims.org_roles),
        }

    @app.get("/invoices")
    async def invoices(
        claims: AccessTokenClaims = Depends(require(role="billing", allow_client_tokens=False)),
    ) -> dict[str, Any]:
        return {"for": claims.sub, "invoices": []}

    @app.get("/orgs/{org_id}/orders")
    async def list_orders(
        org_id: str,
        claims: AccessTokenClaims = Depends(require(org=True, org_path_param="org_id")),
    ) -> dict[str, Any]:
        return {"org_id": org_id, "orders": orders[org_id]}

    @app.post("/orgs/{org_id}/orders", status_code=201)
    async def create_order(
        org_id: str,
        order: NewOrder,
        claims: AccessTokenClaims = Depends(
            require(org_role="admin", org_path_param="org_id", allow_client_tokens=False)
        ),
    ) -> dict[str, Any]:
        made = {"id": len(orders[org_id]) + 1, **order.model_dump(), "by": claims.sub}
        orders[org_id].append(made)
        return made

    @app.get("/reports")
    async def reports(
        claims: AccessTokenClaims = Depends(require(scope="reports:read")),
    ) -> dict[str, Any]:
        return {"client_id": claims.client_id, "reports": []}

    return app


def __getattr__(name: str) -> Any:
    # `uvicorn orders_api:app` builds it from the environment; importing does not.
    if name == "app":
        return create_app(
            issuer=os.environ["OIDC_ISSUER"].rstrip("/"),
            audience=os.environ.get("API_AUDIENCE") or None,
            app_id=os.environ.get("APP_ID") or None,
        )
    raise AttributeError(name)
