"""The bench's measure of what one app schema costs a Postgres backend."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from ops.bench import catalog

from oneauth.apps.models import AppRecord
from oneauth.settings import Settings


@pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")),
    reason="TEST_DATABASE_URL may point at another machine, whose backends' memory "
    "cannot be read here; the local cluster of the tests is always readable",
)
def test_each_app_schema_entered_adds_catalog_memory(
    provision: Callable[..., AppRecord], settings: Settings
) -> None:
    apps = [provision().app_id for _ in range(6)]
    cost = catalog.per_app_cost(settings.database_url, apps)
    assert cost is not None
    assert cost["apps"] == 5
    assert cost["tables_per_app"] >= 10  # every table of the schema was planned
    # Each schema's relations, indexes and their catalog rows: tens of KiB at least.
    assert cost["kib_per_app"] > 20
    assert catalog.per_app_cost(settings.database_url, apps[:1]) is None
