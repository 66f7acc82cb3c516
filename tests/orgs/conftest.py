"""Fixtures of the organization tests: the service's memory mailbox and its worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services


@pytest.fixture
def mailbox(services: Services) -> MemoryBackend:
    assert services.delivery is not None
    backend = services.delivery.backend
    assert isinstance(backend, MemoryBackend)
    backend.messages.clear()
    return backend


@pytest.fixture
def deliver(services: Services) -> Callable[[AppRecord], Any]:
    """Run the service's delivery worker for one app now."""

    async def run(app: AppRecord) -> Any:
        assert services.delivery is not None
        return await services.delivery.deliver_app(app)

    return run
