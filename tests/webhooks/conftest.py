from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.webhooks import endpoints
from oneauth.webhooks.worker import WebhookConfig, WebhookWorker

from ._receiver import Receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def make_worker(services: Services, **config: object) -> WebhookWorker:
    cfg = dataclasses.replace(WebhookConfig(), **config)  # type: ignore[arg-type]
    return WebhookWorker(
        services.settings, services.pool, services.registry, services.router, services.box, cfg
    )


async def add_endpoint(
    services: Services,
    receiver: Receiver,
    app: AppRecord,
    name: str,
    types: tuple[str, ...] = ("user.created",),
    **behaviour: float,
) -> tuple[endpoints.Endpoint, str]:
    url = receiver.configure(name, **behaviour)  # type: ignore[arg-type]
    async with services.router.enter(app) as conn:
        endpoint, secret = await endpoints.create(
            conn, services.box, services.settings, app.app_id, url=url, event_types=types
        )
    receiver.expect(name, secret)
    return endpoint, secret


async def deliveries(services: Services, app: AppRecord) -> list[endpoints.Delivery]:
    async with services.router.enter(app) as conn:
        rows = await conn.fetch("SELECT id, endpoint_id FROM webhook_deliveries ORDER BY id")
        found = []
        for r in rows:
            d = await endpoints.get_delivery(conn, r["id"])
            assert d is not None
            found.append(d)
        return found
