"""The API under test, pointed at the session's throwaway oneauth (``oneauth_app``
comes from ``pytest -p oneauth.testing``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from orders_api import create_app

from oneauth.testing import OneauthApp


@pytest.fixture
def api(oneauth_app: OneauthApp) -> Iterator[TestClient]:
    with TestClient(create_app(issuer=oneauth_app.issuer)) as client:
        yield client
