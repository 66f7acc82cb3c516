"""Where composed messages go: SMTP (aiosmtplib), the console (development) or memory (tests).

A backend opens a *session* per batch so SMTP reuses one connection for many
messages. ``send`` raises ``PermanentFailure`` when retrying cannot help (an SMTP
5xx reply, RFC 5321 section 4.2.1) and ``TransientFailure`` for everything the
worker should retry later (4xx replies, refused connections, timeouts).
"""

from __future__ import annotations

import contextlib
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol, TextIO

import aiosmtplib

from oneauth.settings import Settings


class DeliveryFailure(Exception):
    """A message was not delivered; the message text is safe to store (no secrets)."""


class PermanentFailure(DeliveryFailure):
    pass


class TransientFailure(DeliveryFailure):
    pass


class Sender(Protocol):
    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None: ...


class Backend(Protocol):
    name: str

    def session(self) -> contextlib.AbstractAsyncContextManager[Sender]: ...


# --- SMTP ------------------------------------------------------------------------


@dataclass
class SmtpBackend:
    host: str
    port: int
    tls: str = "starttls"  # starttls | tls | none
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 10.0
    tls_context: ssl.SSLContext | None = None
    name: str = "smtp"

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpBackend:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_effective_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout,
        )

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Sender]:
        session = _SmtpSession(self)
        try:
            yield session
        finally:
            await session.close()


class _SmtpSession:
    def __init__(self, backend: SmtpBackend) -> None:
        self._backend = backend
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        b = self._backend
        smtp = aiosmtplib.SMTP(
            hostname=b.host,
            port=b.port,
            timeout=b.timeout,
            use_tls=b.tls == "tls",
            # starttls: required (fail rather than send in clear); none: never.
            start_tls=b.tls == "starttls",
            tls_context=b.tls_context,
            username=b.username or None,
            password=b.password or None,
        )
        await smtp.connect()
        self._smtp = smtp
        return smtp

    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        try:
            smtp = self._smtp if self._smtp is not None and self._smtp.is_connected else None
            if smtp is None:
                smtp = await self._connect()
            # The envelope names the recipient explicitly: headers never decide it.
            await smtp.send_message(message, sender=sender, recipients=[recipient])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await self.close()
            codes = [r.code for r in exc.recipients]
            failure = PermanentFailure if all(c >= 500 for c in codes) else TransientFailure
            raise failure(f"recipient refused: {codes}") from None
        except aiosmtplib.SMTPResponseException as exc:
            await self.close()
            failure = PermanentFailure if 500 <= exc.code < 600 else TransientFailure
            raise failure(f"SMTP {exc.code}: {str(exc.message)[:200]}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            raise TransientFailure(f"{type(exc).__name__}: {str(exc)[:200]}") from None

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            with contextlib.suppress(Exception):
                await smtp.quit()
            smtp.close()


# --- console (development) ------------------------------------------------------------


@dataclass
class ConsoleBackend:
    """Prints each message's headers and text part: `make run` shows the links here."""

    stream: TextIO | None = None
    name: str = "console"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Sender]:
        yield self

    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        out = self.stream or sys.stdout
        body = message.get_body(("plain",))
        text = body.get_content() if isinstance(body, EmailMessage) else ""
        rule = "-" * 72
        print(
            f"{rule}\nemail (console backend; not sent)\n"
            f"From: {message['From']}\nTo: {recipient}\nSubject: {message['Subject']}\n"
            f"Message-ID: {message['Message-ID']}\n\n{text.rstrip()}\n{rule}",
            file=out,
            flush=True,
        )


# --- memory (tests) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    sender: str
    recipient: str
    message: EmailMessage

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        return body.get_content() if isinstance(body, EmailMessage) else ""

    @property
    def html(self) -> str:
        body = self.message.get_body(("html",))
        return body.get_content() if isinstance(body, EmailMessage) else ""


@dataclass
class MemoryBackend:
    messages: list[Sent] = field(default_factory=list)
    name: str = "memory"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Sender]:
        yield self

    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        self.messages.append(Sent(sender, recipient, message))

    def to(self, recipient: str) -> list[Sent]:
        wanted = recipient.strip().lower()
        return [m for m in self.messages if m.recipient.strip().lower() == wanted]


def from_settings(settings: Settings) -> Backend:
    kind = settings.mail_backend
    if kind == "smtp":
        return SmtpBackend.from_settings(settings)
    if kind == "console":
        return ConsoleBackend()
    return MemoryBackend()
