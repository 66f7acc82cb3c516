"""Fixtures for the email flows: a memory mailbox, a real SMTP server, helpers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiosmtpd.smtp import SMTP as SmtpServer

from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend, SmtpBackend
from oneauth.mail.worker import DeliveryWorker, WorkerConfig
from oneauth.services import Services

PASSWORD = "correct horse battery staple 42"
NEW_PASSWORD = "a quite different passphrase 77"
_CODE = re.compile(r"^\s*(\d{6})\s*$", re.MULTILINE)
_LINK = re.compile(r"https?://\S+token=[A-Za-z0-9_-]+\S*")


def link_in(text: str) -> str:
    match = _LINK.search(text)
    assert match, f"no link in:\n{text}"
    return match.group(0)


def token_in(text: str) -> str:
    return parse_qs(urlsplit(link_in(text)).query)["token"][0]


def code_in(text: str) -> str:
    match = _CODE.search(text)
    assert match, f"no code in:\n{text}"
    return match.group(1)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


@pytest.fixture
def mailbox(services: Services) -> MemoryBackend:
    assert services.delivery is not None
    backend = services.delivery.backend
    assert isinstance(backend, MemoryBackend)
    backend.messages.clear()
    return backend


@pytest.fixture
def deliver(services: Services) -> Callable[[AppRecord], Any]:
    """Run the service's delivery worker for one app (tests drive it; none runs alone)."""

    async def run(app: AppRecord) -> Any:
        assert services.delivery is not None
        return await services.delivery.deliver_app(app)

    return run


# --- a real SMTP server in this process (aiosmtpd on a loopback ephemeral port) -----


@dataclass
class SinkHandler:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    reply: str = "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.reply.startswith("250"):
            return self.reply
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return self.reply

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if str(m["To"]).lower() == address.lower()]


@dataclass
class SmtpSink:
    handler: SinkHandler = field(default_factory=SinkHandler)
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SmtpServer(self.handler, hostname="sink.test"), "127.0.0.1", self.port
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


@pytest.fixture
def smtp_worker(services: Services, smtp_sink: SmtpSink) -> DeliveryWorker:
    """A worker of its own that sends over SMTP to the sink (fast retries)."""
    backend = SmtpBackend(host="127.0.0.1", port=smtp_sink.port, tls="none", timeout=2.0)
    return DeliveryWorker(
        services.settings,
        services.pool,
        services.registry,
        services.router,
        services.box,
        backend,
        WorkerConfig(backoff_base=0.05, backoff_cap=0.2, lease_seconds=30),
    )


# --- API helpers --------------------------------------------------------------------


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


async def signup(client: httpx.AsyncClient, app: AppRecord, email_addr: str) -> httpx.Response:
    return await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": email_addr, "password": PASSWORD}
    )


async def login(
    client: httpx.AsyncClient, app: AppRecord, email_addr: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        f"/apps/{app.app_id}/v1/login", json={"email": email_addr, "password": password}
    )


async def post(
    client: httpx.AsyncClient, app: AppRecord, path: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/apps/{app.app_id}{path}", json=body)


async def query(services: Services, app: AppRecord, sql: str, *args: Any) -> list[Any]:
    async with services.router.enter(app) as conn:
        return list(await conn.fetch(sql, *args))
