"""The registry row as the platform API shows it, and its ETag (no users, no secrets)."""

from __future__ import annotations

from typing import Any

from oneauth.admin.etag import etag_of
from oneauth.apps.models import AppRecord
from oneauth.db import templates
from oneauth.platform.models import AppView, MigrateStatus
from oneauth.settings import issuer_url


def migrate_status(schema_version: int, latest: int) -> MigrateStatus:
    if schema_version < latest:
        return "behind"
    return "ahead" if schema_version > latest else "current"


def app_view(app: AppRecord, public_url: str) -> AppView:
    latest = templates.latest_version("app")
    return AppView(
        app_id=app.app_id,
        display_name=app.display_name,
        status=app.status,
        issuer=issuer_url(public_url, app.app_id),
        created_at=app.created_at.isoformat(),
        schema_version=app.schema_version,
        latest_schema_version=latest,
        migrate_status=migrate_status(app.schema_version, latest),
        settings=dict(app.settings),
    )


def editable(app: AppRecord) -> dict[str, Any]:
    """What PATCH changes, hence what its ETag covers."""
    return {"display_name": app.display_name, "settings": app.settings}


def etag(app: AppRecord) -> str:
    return etag_of(editable(app))
