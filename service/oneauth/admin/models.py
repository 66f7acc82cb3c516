"""Request and response models of the admin API (issue 15), one per response.

Every list has the same shape, ``{"items": [...], "next_cursor": str | null}``
(:mod:`oneauth.admin.pagination`). Secrets never appear in a response model of a
GET; a create that makes one shows it once.
"""

from __future__ import annotations

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
