"""``oneauth platform init``: make (or confirm) the control-plane app. Idempotent.

Provisions the reserved app ``platform`` like any app (registry row, NOLOGIN
role, schema, every app template, signing keys) and registers the console's
first-party client: public, authorization code + PKCE, redirect
``{public_url}/console/callback``, client id ``CONSOLE_CLIENT_ID``. Run again
(``oneauth migrate`` and ``make run`` do) it changes nothing, except the
console's redirect URI when ONEAUTH_PUBLIC_URL changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oneauth import audit
from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.platform import (
    CONSOLE_CALLBACK_PATH,
    CONSOLE_CLIENT_ID,
    PLATFORM_APP_ID,
    PLATFORM_DISPLAY_NAME,
)
from oneauth.settings import Settings


@dataclass(frozen=True)
class InitResult:
    app: AppRecord
    created: bool
    console_client_id: str
    console_redirect_uri: str
    changed: list[str]

    def to_json(self, settings: Settings) -> dict[str, Any]:
        return {
            "app_id": self.app.app_id,
            "issuer": settings.issuer_for(self.app.app_id),
            "created": self.created,
            "console_client_id": self.console_client_id,
            "console_redirect_uri": self.console_redirect_uri,
            "changed": self.changed,
        }


def console_spec(settings: Settings) -> clients.ClientSpec:
    return clients.ClientSpec(
        name="oneauth console",
        kind="public",
        grant_types=frozenset({"authorization_code", "refresh_token"}),
        scopes=frozenset(clients.USER_SCOPES),
        redirect_uris=(settings.public_url + CONSOLE_CALLBACK_PATH,),
        post_logout_redirect_uris=(settings.public_url + "/console/",),
        first_party=True,
    )


def init(conn: lifecycle.Conn, settings: Settings) -> InitResult:
    """Provision the platform app if missing and make sure the console client matches."""
    existing = lifecycle.get(conn, PLATFORM_APP_ID)
    if existing is not None and existing.status != "active":
        raise lifecycle.AppConflict(
            f"the platform app is {existing.status}; the control plane cannot run without it"
        )
    # An existing platform app keeps its name (an operator may have renamed it).
    name = existing.display_name if existing is not None else PLATFORM_DISPLAY_NAME
    provisioned = lifecycle.provision(conn, settings, PLATFORM_APP_ID, name, allow_reserved=True)
    app = provisioned.app
    changed: list[str] = ["app"] if provisioned.created else []
    spec = console_spec(settings)
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{PLATFORM_APP_ID}")
        with ops.app_context(conn, app.names):
            current = clients.get(conn, CONSOLE_CLIENT_ID)
            if current is None:
                clients.create(
                    conn, spec, client_id=CONSOLE_CLIENT_ID, own_origin=settings.public_url
                )
                changed.append("console_client")
            elif (
                current.redirect_uris != spec.redirect_uris
                or current.post_logout_redirect_uris != spec.post_logout_redirect_uris
                or current.disabled
            ):
                clients.update(
                    conn,
                    CONSOLE_CLIENT_ID,
                    own_origin=settings.public_url,
                    redirect_uris=spec.redirect_uris,
                    post_logout_redirect_uris=spec.post_logout_redirect_uris,
                    disabled=False,
                )
                changed.append("console_client")
            if changed:
                audit.record_sync(
                    conn,
                    "platform.init",
                    "success",
                    audit.SYSTEM,
                    app_id=PLATFORM_APP_ID,
                    actor_type="operator",
                    target_type="app",
                    target_id=PLATFORM_APP_ID,
                    details={"changed": changed},
                )
    return InitResult(
        app=app,
        created=provisioned.created,
        console_client_id=CONSOLE_CLIENT_ID,
        console_redirect_uri=spec.redirect_uris[0],
        changed=changed,
    )
