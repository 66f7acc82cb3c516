"""One throwaway oneauth (``oneauth.testing``) for the fixture's and the examples' tests,
on the suite's Postgres server (its own database, dropped after)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oneauth.testing import Oneauth, start_oneauth


@pytest.fixture(scope="session")
def live_oneauth(pg_admin_dsn: str) -> Iterator[Oneauth]:
    with start_oneauth(admin_dsn=pg_admin_dsn) as server:
        yield server
