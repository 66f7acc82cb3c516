"""What the registry knows about an app."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from oneauth.apps.dek import AppDek
from oneauth.db.naming import AppNames, names_for

AppStatus = Literal["active", "suspended", "deleted"]


@dataclass(frozen=True, slots=True)
class AppRecord:
    app_id: str
    display_name: str
    status: AppStatus
    schema_version: int
    created_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)
    # The installation's role namespace when the app was provisioned ('' for
    # apps from before namespaces: their roles keep the legacy names, D2).
    role_namespace: str = ""
    # The app's wrapped data-encryption key (oneauth.apps.dek), read with the
    # row so that whoever holds the record can seal for the app; None before
    # `oneauth migrate` gave an older app one, and after deletion.
    dek: AppDek | None = field(default=None, compare=False, repr=False)
    # The parsed AppPolicy, filled on first use by apps.policy.policy_of. The
    # registry builds a new record whenever settings change, so it never goes stale.
    parsed_policy: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def names(self) -> AppNames:
        return names_for(self.app_id, self.role_namespace)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def to_json(self, issuer: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "app_id": self.app_id,
            "display_name": self.display_name,
            "status": self.status,
            "schema": self.names.schema,
            "role": self.names.role,
            "schema_version": self.schema_version,
            "created_at": self.created_at.isoformat(),
            "settings": self.settings,
        }
        if issuer is not None:
            body["issuer"] = issuer
        return body


REGISTRY_COLUMNS = (
    "app_id, display_name, status, schema_version, created_at, settings, role_namespace,"
    " (SELECT k.dek_id || ':' || k.wrapped_dek FROM oneauth.app_keys k"
    " WHERE k.app_id = apps.app_id)"
)


def record_from_row(row: Any) -> AppRecord:
    """Build from a row of REGISTRY_COLUMNS (psycopg tuple or asyncpg Record)."""
    settings = row[5]
    if isinstance(settings, str):
        import json

        settings = json.loads(settings)
    return AppRecord(
        app_id=row[0],
        display_name=row[1],
        status=row[2],
        schema_version=int(row[3]),
        created_at=row[4],
        settings=dict(settings or {}),
        role_namespace=row[6],
        dek=AppDek.parse(row[7]) if len(row) > 7 else None,
    )
