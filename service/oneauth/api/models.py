"""Request and response models of the first-party JSON API (``/apps/{app_id}/v1``).

The request models carry the input limits (lengths cap what reaches hashing and
Postgres); policy (password strength, address syntax) stays in the flows, which
answer their own problems. The response models describe what the views send;
``/openapi.json`` and ``schemas/`` are generated from them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from oneauth.flows.password import MAX_PASSWORD_INPUT
from oneauth.identity.one_time import MAX_SECRET_INPUT

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType

Email = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PASSWORD_INPUT)]
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SECRET_INPUT)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Uri = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


# -- requests ---------------------------------------------------------------


class Credentials(msgspec.Struct):
    """POST /v1/signup and /v1/login."""

    email: Email
    password: Password


class PasswordChange(msgspec.Struct):
    current_password: Password
    new_password: Password


class EmailRequest(msgspec.Struct):
    """Ask for a verification or reset mail; 202 whatever the address (P4)."""

    email: Email
    redirect_uri: Uri | None = None


class Proof(msgspec.Struct):
    """A link token, or a flow token with its code."""

    token: Secret | None = None
    flow_token: Secret | None = None
    code: Code | None = None


class ResetComplete(msgspec.Struct):
    new_password: Password
    token: Secret | None = None
    flow_token: Secret | None = None
    code: Code | None = None


class PasswordlessStart(msgspec.Struct):
    email: Email
    method: Literal["link", "code"]
    redirect_uri: Uri | None = None


class PasswordlessComplete(msgspec.Struct):
    flow_token: Secret
    token: Secret | None = None
    code: Code | None = None


class EmailChange(msgspec.Struct):
    new_email: Email
    password: Password
    redirect_uri: Uri | None = None


# -- responses --------------------------------------------------------------

Uuid = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
DateTime = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class AppInfo(msgspec.Struct):
    app_id: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{2,39}$")]
    display_name: str
    issuer: str
    audience: str
    default_client_id: Annotated[str, msgspec.Meta(pattern=r"^cl_")] | None


class User(msgspec.Struct, forbid_unknown_fields=True):
    id: Uuid
    email: str
    email_verified: bool
    status: Literal["active", "disabled", "deleted"]
    created_at: DateTime
    updated_at: DateTime


class PendingUser(msgspec.Struct, forbid_unknown_fields=True):
    email: str


class TokenSet(msgspec.Struct, forbid_unknown_fields=True):
    """A token set (RFC 6749 section 5.1); ``user`` and ``flow_token`` on the
    first-party sign-in routes."""

    access_token: Annotated[
        str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
    ]
    token_type: Literal["Bearer"]
    expires_in: Annotated[int, msgspec.Meta(ge=1)]
    scope: str
    refresh_token: Annotated[str, msgspec.Meta(pattern=r"^ort_[A-Za-z0-9_-]{43,}$")] | Unset = UNSET
    id_token: str | Unset = UNSET
    user: User | Unset = UNSET
    flow_token: str | Unset | None = UNSET


class VerificationRequired(msgspec.Struct, forbid_unknown_fields=True):
    """Signup when the app requires a verified address: the same answer whether or
    not the address was registered."""

    user: PendingUser
    verification_required: Literal[True]
    flow_token: str


class FlowStarted(msgspec.Struct, forbid_unknown_fields=True):
    """A mail was queued (or not: the answer is the same, P4); redeem with the code."""

    flow_token: str
    code_expires_in: int | Unset = UNSET
    method: Literal["code", "link"] | Unset = UNSET
    expires_in: int | Unset = UNSET


class Me(msgspec.Struct, forbid_unknown_fields=True):
    """The signed-in user; to a third-party client's token, the UserInfo claims its
    scopes release (only ``sub`` is certain)."""

    sub: Uuid
    app_id: str | Unset = UNSET
    email: str | Unset = UNSET
    email_verified: bool | Unset = UNSET
    created_at: DateTime | Unset = UNSET
    updated_at: str | int | Unset = UNSET
    scope: str | Unset = UNSET
    sid: Uuid | Unset = UNSET


class EmailVerified(msgspec.Struct):
    email: str
    email_verified: bool
    password_cleared: bool | Unset = UNSET


class SignIn(msgspec.Struct):
    """One live sign-in of the user: a hosted-page (browser) session, or a first-party
    API session (``client_id``); ``current``: the one this request came with."""

    id: Uuid
    kind: Literal["browser", "app"]
    client_id: str | None
    client_name: str | None
    amr: list[str]
    auth_time: DateTime
    created_at: DateTime
    last_seen_at: DateTime
    user_agent: str | None
    current: bool


class SignIns(msgspec.Struct):
    sessions: list[SignIn]


class Consent(msgspec.Struct):
    client_id: str
    client_name: str | None
    scopes: list[str]
    granted_at: DateTime
    updated_at: DateTime


class Consents(msgspec.Struct):
    consents: list[Consent]


# -- federation (issue 14) -------------------------------------------------------


class FederationComplete(msgspec.Struct):
    """POST /v1/federation/complete: the one-time code the first-party federation
    flow appended to the app's ``redirect_uri``."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class LinkedIdentity(msgspec.Struct):
    """One upstream identity linked to the user: the app's provider and the
    upstream account (its issuer and subject are the upstream's names for it)."""

    id: Uuid
    provider_id: str
    provider_name: str
    kind: str
    issuer: str
    email: str | None
    email_verified: bool
    created_at: DateTime
    last_login_at: DateTime | None


class LinkedIdentities(msgspec.Struct):
    identities: list[LinkedIdentity]


# -- multi-factor sign-in (issue 12) ---------------------------------------------

FlowToken = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
FactorName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
FactorId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=36, extra_json_schema={"format": "uuid"})
]


class MfaLogin(msgspec.Struct):
    """POST /v1/login/mfa: a second factor for the flow of a 403 ``mfa_required``."""

    flow_token: FlowToken
    factor: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | None = None
    assertion: dict[str, Any] | None = None  # webauthn: PublicKeyCredential.toJSON()


class TotpStart(msgspec.Struct):
    """POST /v1/mfa/totp: with a Bearer token, or the ``flow_token`` of a 403
    ``mfa_enrollment_required``."""

    flow_token: FlowToken | None = None
    name: FactorName | None = None


class TotpConfirm(msgspec.Struct):
    factor_id: FactorId
    code: Code
    flow_token: FlowToken | None = None


class FactorRename(msgspec.Struct):
    name: FactorName


class TotpEnrolment(msgspec.Struct):
    """The seed (shown once) and the otpauth URI for an authenticator app."""

    factor_id: Uuid
    secret: str
    otpauth_uri: str


class TotpActivated(msgspec.Struct):
    """The factor is active. ``recovery_codes``: when the set was created now (shown
    once). ``tokens``: the sign-in an enrolment flow completed."""

    factor_id: Uuid
    recovery_codes: list[str] | Unset = UNSET
    tokens: TokenSet | Unset = UNSET


class RecoveryCodes(msgspec.Struct):
    recovery_codes: list[str]


class MfaFactor(msgspec.Struct):
    id: Uuid
    kind: Literal["totp", "webauthn", "recovery_codes"]
    name: str
    confirmed: bool
    created_at: DateTime
    last_used_at: DateTime | None
    recovery_codes_left: int | Unset = UNSET


class MfaFactors(msgspec.Struct):
    """The user's factors and the app's policy (``mfa``: off, optional, required)."""

    factors: list[MfaFactor]
    mfa: Literal["off", "optional", "required"]
    allowed: list[str]


# -- passkeys (WebAuthn, issue 12) --------------------------------------------

# The browser's JSON forms (WebAuthn L3 5.1.8 toJSON(), 5.1.9 parse*OptionsFromJSON):
# members are base64url strings; the body limits of the bounded loader cap them.
PublicKeyJson = Annotated[
    dict[str, Any],
    msgspec.Meta(description="WebAuthn JSON form (base64url members), as the browser speaks it"),
]
PasskeyName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class WebAuthnRegistrationStart(msgspec.Struct):
    """``POST /v1/mfa/webauthn/registration/options``: with a Bearer token, or the
    ``flow_token`` of a 403 ``mfa_enrollment_required``."""

    flow_token: FlowToken | None = None


class WebAuthnRegistration(msgspec.Struct):
    """``POST /v1/mfa/webauthn/registration``: the new credential's ``toJSON()``
    (and the enrolment ``flow_token`` when that authorized the options)."""

    credential: PublicKeyJson
    name: PasskeyName | None = None
    flow_token: FlowToken | None = None


class WebAuthnAuthenticationStart(msgspec.Struct):
    """``POST /v1/mfa/webauthn/authentication/options``: a sign-in flow's token
    (second factor), or none (discoverable passwordless: a flow is begun)."""

    flow_token: Secret | None = None


class WebAuthnCreationOptions(msgspec.Struct):
    """``{"publicKey": PublicKeyCredentialCreationOptionsJSON}``."""

    publicKey: PublicKeyJson  # the browser's member name


class WebAuthnRequestOptions(msgspec.Struct):
    """``{"publicKey": PublicKeyCredentialRequestOptionsJSON}``; ``flow_token`` when
    this call began the flow (passwordless): send it with the assertion."""

    publicKey: PublicKeyJson
    flow_token: str | Unset = UNSET
    expires_in: int | Unset = UNSET


class WebAuthnFactor(msgspec.Struct):
    """A registered passkey (a row of ``GET /v1/mfa`` too)."""

    factor_id: Uuid
    kind: Literal["webauthn"]
    name: str
    created_at: DateTime
    last_used_at: DateTime | None
    backup_eligible: bool
    transports: list[str]


class WebAuthnRegistered(WebAuthnFactor, kw_only=True):
    """The stored passkey; ``recovery_codes`` when the set was created now (shown
    once); ``tokens``: the sign-in an enrolment flow completed."""

    recovery_codes: list[str] | Unset = UNSET
    tokens: TokenSet | Unset = UNSET


# -- organizations (issue 13) ---------------------------------------------------

OrgId = Annotated[str, msgspec.Meta(pattern=r"^org_[A-Za-z0-9_-]{16,64}$")]
OrgSlug = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"),
]
OrgName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
OrgRoleName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$")
]
# At most this many org roles in one request: a member holds a few, never hundreds.
OrgRoles = Annotated[list[OrgRoleName], msgspec.Meta(max_length=50)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_=-]+$")]


class OrgCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/orgs (where the app allows self-service orgs): the creator is its admin."""

    name: OrgName
    slug: OrgSlug | None = None


class MemberRolesUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH /v1/orgs/{org_id}/members/{user_id}: the member's org roles, replaced."""

    roles: OrgRoles


class InvitationCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/orgs/{org_id}/invitations: mails a single-use link (7 days) to ``email``;
    ``roles`` default to the org's default role."""

    email: Email
    roles: OrgRoles | None = None


class InvitationAccept(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/invitations/accept: the token of the mailed link."""

    token: Secret


class MembersQuery(msgspec.Struct, kw_only=True):
    """GET /v1/orgs/{org_id}/members: the next page after ``cursor``."""

    cursor: Cursor | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


class OrgBranding(msgspec.Struct, forbid_unknown_fields=True):
    display_name: str | None = None
    logo_url: str | None = None
    primary_color: str | None = None


class MyOrg(msgspec.Struct, forbid_unknown_fields=True):
    """An organization the caller belongs to, with the caller's org roles and what
    they allow."""

    id: OrgId
    slug: str
    name: str
    status: Literal["active", "suspended"]
    mfa_required: bool
    join_policy: Literal["off", "offer", "automatic"]
    branding: OrgBranding
    created_at: DateTime
    roles: list[str]
    permissions: list[str]


class MyOrgs(msgspec.Struct, forbid_unknown_fields=True):
    items: list[MyOrg]


class OrgOffer(msgspec.Struct, forbid_unknown_fields=True):
    """An org the caller may join (its verified domain is the caller's verified email's)."""

    id: OrgId
    slug: str
    name: str
    branding: OrgBranding


class OrgOffers(msgspec.Struct, forbid_unknown_fields=True):
    items: list[OrgOffer]


class OrgMember(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Uuid
    email: str
    roles: list[str]
    joined_via: Literal["created", "operator", "invitation", "domain", "api"]
    joined_at: DateTime


class OrgMembers(msgspec.Struct, forbid_unknown_fields=True):
    """One page of members; ``next_cursor`` names the next page (None: the last)."""

    items: list[OrgMember]
    next_cursor: str | None


class OrgInvitation(msgspec.Struct, forbid_unknown_fields=True):
    """An open invitation (its token is only in the mail)."""

    id: Uuid
    org_id: OrgId
    email: str
    roles: list[str]
    invited_by: str
    created_at: DateTime
    expires_at: DateTime


class OrgInvitations(msgspec.Struct, forbid_unknown_fields=True):
    items: list[OrgInvitation]
