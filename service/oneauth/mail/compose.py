"""Turning an outbox row into an RFC 5322 message.

The Message-ID is derived from the row (``<{row id}.{app_id}@{host}>``) and the
Date from the row's creation time, so a message sent again after a crash is
the same message, recognisable as a duplicate by any receiving system
(RFC 5322 section 3.6.4: a Message-ID identifies one message).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.mail.outbox import Claimed
from oneauth.mail.render import Renderer, RenderError
from oneauth.settings import Settings


def message_id(row_id: int, app_id: str, host: str) -> str:
    return f"<{row_id}.{app_id}@{host}>"


def address(addr: str, display_name: str = "") -> Address:
    # Split at the last "@" and let the library quote the local part: a comma or
    # quote in a (permissively validated) address can never become a second
    # recipient in the header.
    local, sep, domain = addr.strip().rpartition("@")
    if not sep or not local or not domain:
        raise RenderError("not a deliverable address")
    return Address(display_name=display_name, username=local, domain=domain)


@dataclass(frozen=True, slots=True)
class Composed:
    sender: str
    recipient: str
    message: EmailMessage


class Composer:
    def __init__(self, settings: Settings, renderer: Renderer) -> None:
        self.settings = settings
        self.renderer = renderer
        self.host = urlsplit(settings.public_url).hostname or "localhost"

    def compose(self, app: AppRecord, row: Claimed, secrets: dict[str, str]) -> Composed:
        policy = policy_of(app)
        sender = policy.email_from or self.settings.mail_from
        values: dict[str, Any] = {
            **row.context,
            **secrets,
            "app_name": app.display_name,
            "app_id": app.app_id,
            "email": row.recipient,
        }
        rendered = self.renderer.render(app.app_id, row.kind, values)
        msg = EmailMessage()
        msg["Subject"] = rendered.subject
        msg["From"] = address(sender, policy.email_from_name or app.display_name)
        msg["To"] = address(row.recipient)
        msg["Date"] = format_datetime(row.created_at)
        msg["Message-ID"] = message_id(row.id, app.app_id, self.host)
        # RFC 3834: automatic message; ask autoresponders to stay quiet.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        msg.set_content(rendered.text)
        msg.add_alternative(rendered.html, subtype="html")
        return Composed(sender=sender, recipient=row.recipient, message=msg)
