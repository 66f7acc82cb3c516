"""End to end over real SMTP (aiosmtpd in this process), and the outbox's reliability."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
import pytest

from oneauth.apps.models import AppRecord
from oneauth.mail import backends
from oneauth.mail.worker import DeliveryWorker
from oneauth.services import Services

from .conftest import (
    NEW_PASSWORD,
    SmtpSink,
    code_in,
    login,
    post,
    query,
    signup,
    text_of,
    token_in,
    unique_email,
)


async def test_end_to_end_over_smtp(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    smtp_sink: SmtpSink,
    smtp_worker: DeliveryWorker,
    services: Services,
) -> None:
    app = provision(
        name="Kiosk",
        app_settings={
            "require_verified_email": True,
            "passwordless": True,
            "email_from": "hello@kiosk.example",
            "email_from_name": "Kiosk Team",
        },
    )
    addr = unique_email()
    # Sign up, receive the mail, use the link: verified.
    started = await signup(client, app, addr)
    assert started.status_code == 202
    report = await smtp_worker.deliver_app(app)
    assert report.sent == 1
    [mail] = smtp_sink.handler.to(addr)
    assert smtp_sink.handler.envelopes[-1] == ("hello@kiosk.example", [addr])
    assert mail["From"].addresses[0].display_name == "Kiosk Team"
    assert mail["Message-ID"].endswith(f".{app.app_id}@testserver>")
    assert mail.get_body(("html",)) is not None
    page = await client.get(f"/apps/{app.app_id}/verify", params={"token": token_in(text_of(mail))})
    assert page.status_code == 200  # GET only shows a button: mail scanners burn nothing
    # With the signup's flow token, so the signup's password stays (P7).
    body = {"token": token_in(text_of(mail)), "flow_token": started.json()["flow_token"]}
    r = await post(client, app, "/v1/email/verify", body)
    assert r.status_code == 200
    session = (await login(client, app, addr)).json()
    assert session["access_token"]

    # Reset: request, follow the link, new password; old sessions dead, old password refused.
    assert (
        await post(client, app, "/v1/password/reset/request", {"email": addr})
    ).status_code == 202
    await smtp_worker.deliver_app(app)
    reset = smtp_sink.handler.to(addr)[-1]
    r = await post(
        client,
        app,
        "/v1/password/reset",
        {"token": token_in(text_of(reset)), "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 204
    me = await client.get(
        f"/apps/{app.app_id}/v1/me",
        headers={"authorization": f"Bearer {session['access_token']}"},
    )
    assert me.status_code == 401
    assert (await login(client, app, addr)).status_code == 401
    assert (await login(client, app, addr, NEW_PASSWORD)).status_code == 200

    # Magic link and one-time code sign-in.
    start = await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "link"})
    await smtp_worker.deliver_app(app)
    r = await post(
        client,
        app,
        "/v1/passwordless/complete",
        {
            "token": token_in(text_of(smtp_sink.handler.to(addr)[-1])),
            "flow_token": start.json()["flow_token"],
        },
    )
    assert r.status_code == 200
    start = await post(client, app, "/v1/passwordless/start", {"email": addr, "method": "code"})
    await smtp_worker.deliver_app(app)
    r = await post(
        client,
        app,
        "/v1/passwordless/complete",
        {
            "code": code_in(text_of(smtp_sink.handler.to(addr)[-1])),
            "flow_token": start.json()["flow_token"],
        },
    )
    assert r.status_code == 200
    # Every sent row was scrubbed: the raw links and codes live only in the mailbox.
    rows = await query(services, app, "SELECT status, secrets_sealed FROM outbox")
    assert {(r["status"], r["secrets_sealed"]) for r in rows} == {("sent", None)}


async def test_smtp_down_then_back_delivers_and_requests_succeed(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    smtp_sink: SmtpSink,
    smtp_worker: DeliveryWorker,
    services: Services,
) -> None:
    app = provision()
    addr = unique_email()
    await signup(client, app, addr)
    await smtp_worker.deliver_app(app)
    await smtp_sink.stop()
    r = await post(client, app, "/v1/password/reset/request", {"email": addr})
    assert r.status_code == 202  # the request does not wait for SMTP
    report = await smtp_worker.deliver_app(app)
    assert (report.sent, report.retried) == (0, 1)
    [row] = await query(
        services,
        app,
        "SELECT status, attempts, last_error FROM outbox WHERE kind = 'reset_password'",
    )
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "Error" in row["last_error"]
    await smtp_sink.start()  # same port
    await _until_sent(smtp_worker, app)
    [mail] = [m for m in smtp_sink.handler.to(addr) if "Reset" in str(m["Subject"])]
    assert (
        await post(
            client,
            app,
            "/v1/password/reset",
            {"token": token_in(text_of(mail)), "new_password": NEW_PASSWORD},
        )
    ).status_code == 204


async def _until_sent(worker: DeliveryWorker, app: AppRecord, tries: int = 50) -> None:
    import asyncio

    for _ in range(tries):
        report = await worker.deliver_app(app)
        if report.next_due is None:
            return
        await asyncio.sleep(min(report.next_due, 0.1) + 0.01)
    raise AssertionError("never delivered")


class Crash(BaseException):
    """The process dies: not an Exception, so nothing in the worker handles it."""


@dataclass
class CrashAfterSend:
    inner: backends.Backend
    name: str = "crash-after-send"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[backends.Sender]:
        async with self.inner.session() as sender:
            yield _Crasher(sender)


@dataclass
class _Crasher:
    sender: backends.Sender

    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        await self.sender.send(message, sender=sender, recipient=recipient)
        raise Crash  # the SMTP server has the message; the row is not marked yet


async def test_crash_between_send_and_mark_resends_the_same_message(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    smtp_sink: SmtpSink,
    smtp_worker: DeliveryWorker,
    services: Services,
) -> None:
    app = provision()
    addr = unique_email()
    await signup(client, app, addr)
    crashing = DeliveryWorker(
        services.settings,
        services.pool,
        services.registry,
        services.router,
        services.box,
        CrashAfterSend(smtp_worker.backend),
        smtp_worker.config,
    )
    with pytest.raises(Crash):
        await crashing.deliver_app(app)
    [row] = await query(services, app, "SELECT status, secrets_sealed FROM outbox")
    assert row["status"] == "sending"  # claimed and leased, never marked
    assert row["secrets_sealed"] is not None
    assert (await smtp_worker.deliver_app(app)).sent == 0  # the lease still holds it
    # The lease runs out (as after a real crash) and another worker picks it up.
    async with services.router.enter(app) as conn:
        await conn.execute("UPDATE outbox SET lease_until = now() - interval '1 second'")
    assert (await smtp_worker.deliver_app(app)).sent == 1
    first, second = smtp_sink.handler.to(addr)
    # At-least-once: sent twice, but recognisably the same message.
    assert first["Message-ID"] == second["Message-ID"]
    assert first["Date"] == second["Date"]
    assert text_of(first) == text_of(second)
    [row] = await query(services, app, "SELECT status, secrets_sealed, attempts FROM outbox")
    assert (row["status"], row["secrets_sealed"], row["attempts"]) == ("sent", None, 2)
    assert (await smtp_worker.deliver_app(app)).sent == 0  # idempotent from here on


async def test_permanent_smtp_failure_dead_letters(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    smtp_sink: SmtpSink,
    smtp_worker: DeliveryWorker,
    services: Services,
) -> None:
    app = provision()
    smtp_sink.handler.reply = "550 5.1.1 no such mailbox"
    await signup(client, app, unique_email())
    report = await smtp_worker.deliver_app(app)
    assert report.dead == 1
    [row] = await query(services, app, "SELECT status, secrets_sealed, last_error FROM outbox")
    assert (row["status"], row["secrets_sealed"]) == ("dead", None)
    assert "550" in row["last_error"]
    audit = await query(
        services, app, "SELECT details FROM audit_log WHERE event = 'email.delivery'"
    )
    assert len(audit) == 1


async def test_transient_failures_dead_letter_after_max_attempts(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    smtp_sink: SmtpSink,
    smtp_worker: DeliveryWorker,
    services: Services,
) -> None:
    app = provision()
    smtp_sink.handler.reply = "451 4.3.0 try again later"
    await signup(client, app, unique_email())
    async with services.router.enter(app) as conn:
        await conn.execute("UPDATE outbox SET max_attempts = 3")
    await _until_sent(smtp_worker, app)
    [row] = await query(services, app, "SELECT status, attempts, secrets_sealed FROM outbox")
    assert (row["status"], row["attempts"], row["secrets_sealed"]) == ("dead", 3, None)


async def test_expired_message_is_never_sent(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    smtp_sink: SmtpSink,
    smtp_worker: DeliveryWorker,
    services: Services,
) -> None:
    app = provision()
    await signup(client, app, unique_email())
    async with services.router.enter(app) as conn:
        await conn.execute("UPDATE outbox SET not_after = now() - interval '1 second'")
    report = await smtp_worker.deliver_app(app)
    assert (report.sent, report.expired) == (0, 1)
    assert smtp_sink.handler.messages == []
    [row] = await query(services, app, "SELECT status, secrets_sealed FROM outbox")
    assert (row["status"], row["secrets_sealed"]) == ("expired", None)


async def test_two_workers_never_claim_the_same_row(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    smtp_sink: SmtpSink,
    smtp_worker: DeliveryWorker,
    services: Services,
) -> None:
    import asyncio

    app = provision()
    for _ in range(20):
        await signup(client, app, unique_email())
    other = DeliveryWorker(
        services.settings,
        services.pool,
        services.registry,
        services.router,
        services.box,
        smtp_worker.backend,
        smtp_worker.config,
    )
    smtp_worker.config.batch_size = other.config.batch_size = 3
    reports = await asyncio.gather(smtp_worker.deliver_app(app), other.deliver_app(app))
    assert sum(r.sent for r in reports) == 20
    assert len(smtp_sink.handler.messages) == 20
    assert len({str(m["Message-ID"]) for m in smtp_sink.handler.messages}) == 20
