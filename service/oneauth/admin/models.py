"""Request and response models of the admin API (issue 15), one per response.

Every list has the same shape, ``{"items": [...], "next_cursor": str | null}``
(:mod:`oneauth.admin.pagination`). Secrets never appear in a response model of a
GET; a create that makes one shows it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from oneauth.admin.pagination import DEFAULT_LIMIT, Cursor, Limit
from oneauth.api.models import DateTime, Uuid
from oneauth.flows.password import MAX_PASSWORD_INPUT

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType

Email = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
EmailPrefix = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PASSWORD_INPUT)]
DisplayName = Annotated[str, msgspec.Meta(max_length=200)]
UserStatus = Literal["active", "disabled"]


# -- users: requests ----------------------------------------------------------


class UserQuery(msgspec.Struct, forbid_unknown_fields=True):
    """GET /admin/v1/users: ``email`` is a prefix of the (normalized) address."""

    email: EmailPrefix | None = None
    status: UserStatus | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class PageQuery(msgspec.Struct, forbid_unknown_fields=True):
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST /admin/v1/users. Without a password the user signs in another way
    (a mailed link or code, an upstream provider) or resets one."""

    email: Email
    password: Password | None = None
    email_verified: bool = False


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH /admin/v1/users/{user_id}: the members given change. A new address
    is stored as given (the operator vouches for it: ``email_verified`` says
    whether it is proven) and must be free in this app (409 ``email_taken``)."""

    email: Email | Unset = UNSET
    email_verified: bool | Unset = UNSET


# -- users: responses ---------------------------------------------------------


class AdminUser(msgspec.Struct):
    id: Uuid
    email: str
    email_verified: bool
    status: str
    has_password: bool
    created_at: DateTime
    updated_at: DateTime
    last_login_at: DateTime | None = None


class UserPage(msgspec.Struct):
    items: list[AdminUser]
    next_cursor: str | None


class AdminSession(msgspec.Struct):
    id: Uuid
    kind: Literal["browser", "app"]
    client_id: str | None
    client_name: str | None
    amr: list[str]
    auth_time: DateTime
    created_at: DateTime
    last_seen_at: DateTime
    user_agent: str | None


class SessionPage(msgspec.Struct):
    items: list[AdminSession]
    next_cursor: str | None


class AdminFactor(msgspec.Struct):
    """A second factor (``totp``, ``webauthn``) or the recovery-code set; no secret."""

    id: Uuid
    kind: str
    name: str
    confirmed: bool
    created_at: DateTime
    last_used_at: DateTime | None
    recovery_codes_left: int | None = None


class AdminLinkedIdentity(msgspec.Struct):
    id: Uuid
    provider_id: str
    provider_name: str
    kind: str
    email: str | None
    email_verified: bool
    created_at: DateTime
    last_login_at: DateTime | None


class AdminUserOrg(msgspec.Struct):
    id: str
    slug: str
    name: str
    roles: list[str]


class AdminUserDetail(msgspec.Struct):
    user: AdminUser
    sessions: int
    factors: list[AdminFactor]
    linked_identities: list[AdminLinkedIdentity]
    orgs: list[AdminUserOrg]
    roles: list[str]
    permissions: list[str]


class SessionsRevoked(msgspec.Struct):
    revoked: int


class MfaReset(msgspec.Struct):
    totp_removed: int
    passkeys_removed: int
    recovery_codes_removed: int


# -- audit log (owner: audit-chain) ------------------------------------------------

AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
AuditEvent = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.]*$")
]
AuditText = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
AuditOutcome = Literal["success", "failure", "denied", "error"]


class AuditQuery(msgspec.Struct, forbid_unknown_fields=True):
    """GET /admin/v1/audit: newest first. ``from`` inclusive, ``to`` exclusive (ISO 8601
    with offset); ``event`` an event name or a dotted prefix (``admin`` matches
    ``admin.user.disable``); ``actor``/``target`` the actor's or target's id."""

    since: AwareTime | None = msgspec.field(default=None, name="from")
    until: AwareTime | None = msgspec.field(default=None, name="to")
    event: AuditEvent | None = None
    actor: AuditText | None = None
    target: AuditText | None = None
    outcome: AuditOutcome | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


# -- webhooks (owner: webhooks; oneauth.webhooks) ---------------------------------

WebhookUrl = Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]
WebhookEventType = Annotated[str, msgspec.Meta(min_length=3, max_length=80)]
WebhookDescription = Annotated[str, msgspec.Meta(max_length=500)]
WebhookEventTypeList = Annotated[list[WebhookEventType], msgspec.Meta(min_length=1, max_length=64)]
DeliveryStatus = Literal["pending", "sending", "delivered", "dead"]


class WebhookEndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST /admin/v1/webhooks: https URL (http://127.0.0.1 in development/test only)."""

    url: WebhookUrl
    event_types: WebhookEventTypeList
    description: WebhookDescription = ""
    enabled: bool = True


class WebhookEndpointUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH /admin/v1/webhooks/{endpoint_id}: the members given change."""

    url: WebhookUrl | Unset = UNSET
    event_types: WebhookEventTypeList | Unset = UNSET
    description: WebhookDescription | Unset = UNSET
    enabled: bool | Unset = UNSET


class WebhookDeliveryQuery(msgspec.Struct, forbid_unknown_fields=True):
    status: DeliveryStatus | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class AuditExportQuery(msgspec.Struct, forbid_unknown_fields=True):
    since: AwareTime | None = msgspec.field(default=None, name="from")
    until: AwareTime | None = msgspec.field(default=None, name="to")


class AuditEntry(msgspec.Struct):
    id: int
    occurred_at: DateTime
    event: str
    outcome: str
    actor_type: str | None
    actor_id: str | None
    target_type: str | None
    target_id: str | None
    request_id: str | None
    ip_hash: str | None
    user_agent: str | None
    details: dict[str, Any]
    # hex of the row's chain hash; null until the sealer has linked it
    row_hash: str | None


class AuditPage(msgspec.Struct):
    items: list[AuditEntry]
    next_cursor: str | None


class AuditProblem(msgspec.Struct):
    kind: Literal[
        "changed", "deleted", "inserted", "reordered", "rewritten", "checkpoint", "unreadable"
    ]
    audit_id: int | None
    message: str


class AuditVerification(msgspec.Struct):
    app_id: str
    intact: bool
    rows: int
    sealed: int
    unsealed: int
    head_id: int | None
    checkpoints: int
    checkpoints_matched: int
    pruned_through: int | None
    first_problem: AuditProblem | None
    problems: list[AuditProblem]


class AuditCheckpoint(msgspec.Struct):
    """A signed checkpoint: ``jws`` verifies with ``public_jwk`` (one of the app's
    signing keys); ``key_proof`` lets ``oneauth audit verify --checkpoints`` vouch for it."""

    app_id: str
    seq: int
    kind: Literal["periodic", "prune"]
    audit_id: int
    row_hash: str
    pruned_through: int | None
    jws: str
    kid: str
    public_jwk: dict[str, Any]
    key_proof: str
    created_at: DateTime


class AuditCheckpointPage(msgspec.Struct):
    items: list[AuditCheckpoint]
    next_cursor: str | None


class WebhookEndpoint(msgspec.Struct):
    """An endpoint as every GET shows it: never its secret."""

    id: str
    url: str
    event_types: list[str]
    enabled: bool
    description: str
    created_at: DateTime
    updated_at: DateTime
    secret_rotated_at: DateTime | None = None


class WebhookEndpointCreated(msgspec.Struct):
    """The new endpoint and its signing secret, shown this once."""

    endpoint: WebhookEndpoint
    secret: str


class WebhookSecret(msgspec.Struct):
    """A rotated signing secret, shown this once."""

    endpoint_id: str
    secret: str


class WebhookEndpointPage(msgspec.Struct):
    items: list[WebhookEndpoint]
    next_cursor: str | None


class WebhookDelivery(msgspec.Struct):
    id: int
    event_id: str
    endpoint_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: DateTime
    created_at: DateTime
    payload: dict[str, Any]
    last_status: int | None = None
    last_error: str | None = None
    replay_of: int | None = None
    delivered_at: DateTime | None = None


class WebhookDeliveryPage(msgspec.Struct):
    items: list[WebhookDelivery]
    next_cursor: str | None


class WebhookEventTypeInfo(msgspec.Struct):
    type: str
    description: str


class WebhookEventTypes(msgspec.Struct):
    items: list[WebhookEventTypeInfo]
