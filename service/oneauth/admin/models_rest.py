"""Request and response models of the app admin API's directory, clients, providers,
keys and settings routes (issue 15; ``/apps/{app_id}/admin/v1/...``).

One model per response; lists are ``{"items": [...], "next_cursor": str | null}``.
Secrets appear in exactly two responses, each once: a client's secret at creation
(``ClientCreated``) and at rotation (``ClientSecret``). A provider's secret is
write-only: it is in ``ProviderCreate`` / ``ProviderUpdate`` and in no response.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Text = Annotated[str, msgspec.Meta(max_length=500)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Uri = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Scope = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Names = Annotated[list[Name], msgspec.Meta(max_length=100)]
Scopes = Annotated[list[Scope], msgspec.Meta(max_length=100)]
Uris = Annotated[list[Uri], msgspec.Meta(max_length=20)]
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
Ttl = Annotated[int, msgspec.Meta(ge=60, le=31536000)]


class ListQuery(msgspec.Struct, forbid_unknown_fields=True):
    """``?cursor=&limit=`` of every list (limit 1..200, default 50)."""

    cursor: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


# -- roles and permissions --------------------------------------------------------


class AdminRole(msgspec.Struct):
    id: str
    name: str
    description: str
    permissions: list[str]
    created_at: str


class AdminRoles(msgspec.Struct):
    items: list[AdminRole]
    next_cursor: str | None


class RoleCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    permissions: Names = []
    description: Text = ""


class RoleUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Options left out stay; ``permissions`` replaces the whole set."""

    description: Text | None = None
    permissions: Names | None = None


class AdminPermission(msgspec.Struct):
    name: str
    description: str
    created_at: str


class AdminPermissions(msgspec.Struct):
    items: list[AdminPermission]
    next_cursor: str | None


class PermissionCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Text = ""


class UserRoles(msgspec.Struct):
    """A user's app roles after a grant or a revocation; ``changed`` false: no-op."""

    user_id: str
    role: str
    changed: bool
    roles: list[str]


# -- organizations ----------------------------------------------------------------


class AdminOrg(msgspec.Struct):
    id: str
    slug: str
    name: str
    status: Literal["active", "suspended"]
    mfa_required: bool
    join_policy: Literal["off", "offer", "automatic"]
    default_role: str | None
    branding: dict[str, str]
    created_at: str
    updated_at: str


class AdminOrgs(msgspec.Struct):
    items: list[AdminOrg]
    next_cursor: str | None


class AdminOrgCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Label
    slug: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    admin_user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=320)] | None = None


class AdminOrgUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Options left out stay; ``default_role: null`` clears it; in ``branding`` a
    value null removes that key."""

    name: Label | None = None
    slug: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    mfa_required: bool | None = None
    join_policy: Literal["off", "offer", "automatic"] | None = None
    default_role: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | Unset | None = UNSET
    branding: dict[str, Annotated[str, msgspec.Meta(max_length=2048)] | None] | None = None


class AdminOrgDeleted(msgspec.Struct):
    id: str
    deleted: bool
    sessions_ended: int


class AdminMember(msgspec.Struct):
    user_id: str
    email: str
    roles: list[str]
    joined_via: str
    joined_at: str


class AdminMembers(msgspec.Struct):
    items: list[AdminMember]
    next_cursor: str | None


class AdminMemberAdd(msgspec.Struct, forbid_unknown_fields=True):
    """``user_id``: the user's id (or email); ``roles``: default the org's default role."""

    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
    roles: Names | None = None


class AdminInvitation(msgspec.Struct):
    id: str
    org_id: str
    email: str
    roles: list[str]
    invited_by: str
    state: str
    created_at: str
    expires_at: str


class AdminInvitations(msgspec.Struct):
    items: list[AdminInvitation]
    next_cursor: str | None


class AdminInvitationCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The link is mailed to the address (never returned); ``ttl_days`` 1..30."""

    email: Email
    roles: Names | None = None
    ttl_days: Annotated[int, msgspec.Meta(ge=1, le=30)] = 7


# -- clients ----------------------------------------------------------------------


class AdminClient(msgspec.Struct):
    client_id: str
    name: str
    kind: Literal["public", "confidential"]
    first_party: bool
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scopes: list[str]
    token_endpoint_auth_method: str
    access_token_ttl: int | None
    refresh_token_ttl: int | None
    created_at: str
    disabled: bool
    org_id: str | None


class AdminClients(msgspec.Struct):
    items: list[AdminClient]
    next_cursor: str | None


class ClientCreated(msgspec.Struct):
    """The new client; ``client_secret`` (confidential clients) is shown only here."""

    client: AdminClient
    client_secret: str | None


class ClientCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Label
    confidential: bool = False
    grant_types: (
        list[Literal["authorization_code", "refresh_token", "client_credentials"]] | None
    ) = None
    scopes: Scopes | None = None
    redirect_uris: Uris = []
    post_logout_redirect_uris: Uris = []
    first_party: bool = False
    auth_method: Literal["client_secret_basic", "client_secret_post"] | None = None
    access_token_ttl: Ttl | None = None
    refresh_token_ttl: Ttl | None = None
    org_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class ClientUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Options left out stay; a list given replaces the whole list."""

    name: Label | None = None
    grant_types: (
        list[Literal["authorization_code", "refresh_token", "client_credentials"]] | None
    ) = None
    scopes: Scopes | None = None
    redirect_uris: Uris | None = None
    post_logout_redirect_uris: Uris | None = None
    first_party: bool | None = None
    access_token_ttl: Ttl | None = None
    refresh_token_ttl: Ttl | None = None


class SecretRotate(msgspec.Struct, forbid_unknown_fields=True):
    """Older secrets keep working ``overlap_seconds`` (0: revoked now; at most 30 days)."""

    overlap_seconds: Annotated[int, msgspec.Meta(ge=0, le=2592000)] = 86400


class ClientSecret(msgspec.Struct):
    """The new secret, shown only here."""

    client_id: str
    client_secret: str
    older_secrets_expire_in: int


# -- upstream identity providers --------------------------------------------------


class AdminProvider(msgspec.Struct):
    """A provider without its secret (write-only)."""

    id: str
    kind: Literal["oidc", "google", "microsoft", "apple", "github"]
    name: str
    button_label: str
    issuer: str
    client_id: str
    auth_method: str
    auth_params: dict[str, Any]
    scopes: list[str]
    claim_mapping: dict[str, str]
    enabled: bool
    jit_signup: bool
    linking: Literal["confirm", "never"]
    trust_email_verified: bool
    trust_amr: bool
    keep_tokens: bool
    created_at: str | None
    updated_at: str | None
    callback_url: str


class AdminProviders(msgspec.Struct):
    items: list[AdminProvider]
    next_cursor: str | None


AuthParams = Annotated[dict[str, Annotated[str, msgspec.Meta(max_length=500)]], msgspec.Meta()]
ClaimMapping = dict[
    Literal["email", "email_verified", "name"], Annotated[str, msgspec.Meta(max_length=200)]
]


class ProviderCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["oidc", "google", "microsoft", "apple", "github"]
    name: Name
    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    client_secret: Secret
    issuer: Uri | None = None
    scopes: Scopes | None = None
    button_label: Name | None = None
    auth_method: (
        Literal[
            "client_secret_basic", "client_secret_post", "private_key_jwt", "apple_client_secret"
        ]
        | None
    ) = None
    auth_params: AuthParams = {}
    claim_mapping: ClaimMapping = {}
    enabled: bool = True
    jit_signup: bool = True
    linking: Literal["confirm", "never"] = "confirm"
    trust_email_verified: bool | None = None
    trust_amr: bool = False
    keep_tokens: bool = False


class ProviderUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Options left out stay; ``client_secret`` re-seals a new secret."""

    name: Name | None = None
    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None
    client_secret: Secret | None = None
    issuer: Uri | None = None
    scopes: Scopes | None = None
    button_label: Name | None = None
    auth_method: (
        Literal[
            "client_secret_basic", "client_secret_post", "private_key_jwt", "apple_client_secret"
        ]
        | None
    ) = None
    auth_params: AuthParams | None = None
    claim_mapping: ClaimMapping | None = None
    enabled: bool | None = None
    jit_signup: bool | None = None
    linking: Literal["confirm", "never"] | None = None
    trust_email_verified: bool | None = None
    trust_amr: bool | None = None
    keep_tokens: bool | None = None


# -- signing keys -----------------------------------------------------------------


class AdminKey(msgspec.Struct):
    """A signing key's public facts (never its private part, not even sealed)."""

    kid: str
    alg: str
    state: Literal["next", "active", "retired", "revoked"]
    created_at: str
    activate_after: str | None
    activated_at: str | None
    retired_at: str | None
    publish_until: str | None
    revoked_at: str | None


class AdminKeys(msgspec.Struct):
    items: list[AdminKey]
    next_cursor: str | None


class KeyRotate(msgspec.Struct, forbid_unknown_fields=True):
    """``emergency``: revoke the active key now; ``all`` (with ``emergency``): every
    key; ``force``: promote a next key published less than the JWKS cache time ago."""

    emergency: bool = False
    all: bool = False
    force: bool = False


class KeyRotation(msgspec.Struct):
    mode: Literal["normal", "emergency", "emergency_all"]
    activated: list[str]
    retired: list[str]
    revoked: list[str]
    published: list[str]
    removed: list[str]


# -- settings ---------------------------------------------------------------------


class AdminSettings(msgspec.Struct):
    """``settings``: what is set for this app; ``effective``: every setting with its
    value in force (defaults included). The ETag header covers ``settings``."""

    settings: dict[str, Any]
    effective: dict[str, Any]


class SettingsPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``set``: keys to give a value; ``unset``: keys to put back to their default.
    Keys not named keep their value. The result must pass the one policy parser."""

    set: dict[str, Any] = msgspec.field(default_factory=dict)
    unset: Annotated[list[Name], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class SettingsJobError(msgspec.Struct, kw_only=True):
    code: str
    detail: str


class SettingsJob(msgspec.Struct, kw_only=True):
    """A settings change the operator-role job runner has not finished within the
    request (202), or its state later: ``settings`` once it succeeded."""

    job_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    settings: dict[str, Any] | None = None
    error: SettingsJobError | None = None
