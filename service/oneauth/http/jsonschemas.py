"""``schemas/*.json``: generated from the same models that validate and document (issue 11).

    python -m oneauth.http.jsonschemas schemas      # what ``make schemas`` runs

One file per model below, self-contained (what it refers to under ``$defs``), with
``$id`` ``urn:oneauth:schema:<file name>``; ``tests/test_schemas.py`` checks the
committed files equal these and that live payloads match them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from oneauth.admin import models as admin
from oneauth.admin import models_rest as admin_rest
from oneauth.api import models as api
from oneauth.http.openapi import DIALECT, OAuthErrorBody, Problem, schema_components
from oneauth.oauth import models as oauth
from oneauth.platform import models as platform

MODELS: dict[str, Any] = {
    "admin_client": admin_rest.AdminClient,
    "admin_client_create": admin_rest.ClientCreate,
    "admin_client_created": admin_rest.ClientCreated,
    "admin_client_page": admin_rest.AdminClients,
    "admin_client_secret": admin_rest.ClientSecret,
    "admin_client_secret_rotate": admin_rest.SecretRotate,
    "admin_client_update": admin_rest.ClientUpdate,
    "admin_invitation": admin_rest.AdminInvitation,
    "admin_invitation_create": admin_rest.AdminInvitationCreate,
    "admin_invitation_page": admin_rest.AdminInvitations,
    "admin_key_page": admin_rest.AdminKeys,
    "admin_key_rotate": admin_rest.KeyRotate,
    "admin_key_rotation": admin_rest.KeyRotation,
    "admin_member": admin_rest.AdminMember,
    "admin_member_add": admin_rest.AdminMemberAdd,
    "admin_member_page": admin_rest.AdminMembers,
    "admin_org": admin_rest.AdminOrg,
    "admin_org_create": admin_rest.AdminOrgCreate,
    "admin_org_deleted": admin_rest.AdminOrgDeleted,
    "admin_org_page": admin_rest.AdminOrgs,
    "admin_org_update": admin_rest.AdminOrgUpdate,
    "admin_permission": admin_rest.AdminPermission,
    "admin_permission_create": admin_rest.PermissionCreate,
    "admin_permission_page": admin_rest.AdminPermissions,
    "admin_provider": admin_rest.AdminProvider,
    "admin_provider_create": admin_rest.ProviderCreate,
    "admin_provider_page": admin_rest.AdminProviders,
    "admin_provider_update": admin_rest.ProviderUpdate,
    "admin_role": admin_rest.AdminRole,
    "admin_role_create": admin_rest.RoleCreate,
    "admin_role_page": admin_rest.AdminRoles,
    "admin_role_update": admin_rest.RoleUpdate,
    "admin_settings": admin_rest.AdminSettings,
    "admin_settings_job": admin_rest.SettingsJob,
    "admin_settings_patch": admin_rest.SettingsPatch,
    "admin_user_roles": admin_rest.UserRoles,
    "admin_mfa_reset": admin.MfaReset,
    "admin_session_page": admin.SessionPage,
    "admin_sessions_revoked": admin.SessionsRevoked,
    "admin_user": admin.AdminUser,
    "admin_user_create": admin.UserCreate,
    "admin_user_detail": admin.AdminUserDetail,
    "admin_user_page": admin.UserPage,
    "admin_user_update": admin.UserUpdate,
    "admin_webhook_delivery": admin.WebhookDelivery,
    "admin_webhook_delivery_page": admin.WebhookDeliveryPage,
    "admin_webhook_endpoint": admin.WebhookEndpoint,
    "admin_webhook_endpoint_create": admin.WebhookEndpointCreate,
    "admin_webhook_endpoint_created": admin.WebhookEndpointCreated,
    "admin_webhook_endpoint_page": admin.WebhookEndpointPage,
    "admin_webhook_endpoint_update": admin.WebhookEndpointUpdate,
    "admin_webhook_event_types": admin.WebhookEventTypes,
    "admin_webhook_secret": admin.WebhookSecret,
    "app_info": api.AppInfo,
    "consents": api.Consents,
    "credentials": api.Credentials,
    "email_change": api.EmailChange,
    "email_request": api.EmailRequest,
    "email_verified": api.EmailVerified,
    "federation_complete": api.FederationComplete,
    "flow_started": api.FlowStarted,
    "introspection": oauth.Introspection,
    "invitation_accept": api.InvitationAccept,
    "invitation_create": api.InvitationCreate,
    "jwks": oauth.JwkSet,
    "linked_identities": api.LinkedIdentities,
    "me": api.Me,
    "member_roles_update": api.MemberRolesUpdate,
    "mfa_factors": api.MfaFactors,
    "mfa_login": api.MfaLogin,
    "my_org": api.MyOrg,
    "my_orgs": api.MyOrgs,
    "oauth_error": OAuthErrorBody,
    "org_create": api.OrgCreate,
    "org_invitation": api.OrgInvitation,
    "org_invitations": api.OrgInvitations,
    "org_member": api.OrgMember,
    "org_members": api.OrgMembers,
    "org_offers": api.OrgOffers,
    "password_change": api.PasswordChange,
    "passwordless_complete": api.PasswordlessComplete,
    "passwordless_start": api.PasswordlessStart,
    "platform_app": platform.AppView,
    "platform_app_page": platform.AppPage,
    "platform_configure": platform.ConfigureBody,
    "platform_job": platform.JobView,
    "platform_job_page": platform.JobPage,
    "platform_provision": platform.ProvisionBody,
    "problem": Problem,
    "proof": api.Proof,
    "provider_metadata": oauth.ProviderMetadata,
    "recovery_codes": api.RecoveryCodes,
    "reset_complete": api.ResetComplete,
    "token_form": oauth.TokenForm,
    "token_response": api.TokenSet,
    "totp_activated": api.TotpActivated,
    "totp_confirm": api.TotpConfirm,
    "totp_enrolment": api.TotpEnrolment,
    "totp_start": api.TotpStart,
    "user": api.User,
    "userinfo": oauth.UserInfo,
    "verification_required": api.VerificationRequired,
    "webauthn_authentication_start": api.WebAuthnAuthenticationStart,
    "webauthn_creation_options": api.WebAuthnCreationOptions,
    "webauthn_registered": api.WebAuthnRegistered,
    "webauthn_registration": api.WebAuthnRegistration,
    "webauthn_registration_start": api.WebAuthnRegistrationStart,
    "webauthn_request_options": api.WebAuthnRequestOptions,
}


def schemas() -> dict[str, dict[str, Any]]:
    """File stem -> JSON Schema (2020-12)."""
    out: dict[str, dict[str, Any]] = {}
    for stem, model in MODELS.items():
        components = schema_components([model], "#/$defs/{name}")
        own = components.pop(model.__name__)
        doc = {"$schema": DIALECT, "$id": f"urn:oneauth:schema:{stem}", **own}
        if components:
            doc["$defs"] = components
        out[stem] = doc
    return out


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; files no model produces are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = schemas()
    for stale in directory.glob("*.json"):
        if stale.stem not in wanted:
            stale.unlink()
    written = []
    for stem, doc in wanted.items():
        path = directory / f"{stem}.json"
        path.write_text(render(doc))
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")
    for path in write(target):
        print(path)
