"""Request and response models of the platform API (``/admin/v1/apps...``, issue 15).

Registry data only: an app's id, name, status, schema version and settings
(which hold no secrets). Never an app's users, clients or keys.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

AppId = Annotated[str, msgspec.Meta(min_length=3, max_length=40, pattern=r"^[a-z][a-z0-9-]*$")]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=200)]
Wait = Annotated[float, msgspec.Meta(ge=0, le=10)]
ListStatus = Literal["active", "suspended", "deleted", "all"]
JobKind = Literal["provision", "configure", "suspend", "resume", "delete"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
MigrateStatus = Literal["current", "behind", "ahead"]


class AppListQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``q``: a prefix of the app_id or of the display name (case-insensitive);
    ``status``: default every app but deleted ones; ``cursor``: ``next_cursor``
    of the previous page."""

    q: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern="^[^\\x00-\\x1f\\x7f]+$")]
        | None
    ) = None
    status: ListStatus | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class WaitQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``wait``: seconds (up to 10) to wait for the job to finish before answering."""

    wait: Wait = 0


class AppView(msgspec.Struct, kw_only=True):
    app_id: str
    display_name: str
    status: Literal["active", "suspended", "deleted"]
    issuer: str
    created_at: str
    schema_version: int
    # The version this release's templates reach: "behind" means `oneauth
    # migrate` has not run for this app yet (its routes answer 503 until then).
    latest_schema_version: int
    migrate_status: MigrateStatus
    settings: dict[str, Any]


class AppPage(msgspec.Struct, kw_only=True):
    items: list[AppView]
    next_cursor: str | None


class ProvisionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    app_id: AppId
    display_name: DisplayName
    settings: dict[str, Any] | None = None


class ConfigureBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``settings``: the keys to change; a null value goes back to the default."""

    display_name: DisplayName | None = None
    settings: dict[str, Any] | None = None


class JobError(msgspec.Struct, kw_only=True):
    code: str
    detail: str


class JobView(msgspec.Struct, kw_only=True):
    job_id: str
    kind: JobKind
    app_id: str
    status: JobStatus
    # succeeded: the app as GET /admin/v1/apps/{app_id} shows it
    result: AppView | None
    error: JobError | None
    created_at: str
    finished_at: str | None
    # a succeeded delete: the signed deletion receipt (K3), as `oneauth apps delete`
    # prints it; check it with `oneauth apps verify-deleted`
    receipt: str | None = None


class JobListQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    app_id: AppId | None = None
    status: JobStatus | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class JobPage(msgspec.Struct, kw_only=True):
    items: list[JobView]
    next_cursor: str | None
