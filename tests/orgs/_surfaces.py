"""Helpers of the /v1/orgs and hosted invitation tests: users with tokens, orgs, mail."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.orgs import service as orgs
from oneauth.orgs.actor import OPERATOR
from oneauth.services import Services

PASSWORD = "violet-Harbor-lantern-42"
PROBLEM = "application/problem+json"
_LINK = re.compile(r"https?://\S+/invitations/accept\?token=[A-Za-z0-9_-]+")


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.com"


@dataclass
class Person:
    """A user of one app with a first-party access token."""

    app: AppRecord
    email: str
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    @property
    def uuid(self) -> uuid.UUID:
        return uuid.UUID(self.id)


async def person(
    http: httpx.AsyncClient,
    services: Services,
    app: AppRecord,
    email: str | None = None,
    *,
    verified: bool = True,
) -> Person:
    """Sign up (the API), and mark the address verified as a mailed proof would."""
    email = email or unique_email()
    made = await http.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert made.status_code == 201, made.text
    body = made.json()
    if verified:
        async with services.router.enter(app) as conn:
            await conn.execute(
                "UPDATE users SET email_verified = true WHERE id = $1",
                uuid.UUID(body["user"]["id"]),
            )
    return Person(app, email, body["user"]["id"], body["access_token"])


async def org_of(
    services: Services,
    app: AppRecord,
    slug: str,
    *,
    admin: Person | None = None,
    members: tuple[tuple[Person, list[str] | None], ...] = (),
) -> orgs.Org:
    """An org made by the operator (the CLI's service calls), with an admin and members."""
    async with services.router.enter(app) as conn:
        org = await orgs.create(
            conn,
            name=slug.title(),
            slug=slug,
            creator=admin.uuid if admin else None,
            actor=OPERATOR,
        )
        for who, roles in members:
            await orgs.add_member(conn, org.id, who.uuid, roles=roles, actor=OPERATOR)
    return org


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error format: problem+json with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status, body
    assert body["type"] == f"urn:oneauth:error:{code}", body
    return body


def invitation_link(mailbox: MemoryBackend, address: str) -> str:
    sent = mailbox.to(address)
    assert sent, f"no mail to {address}"
    message = sent[-1].message
    body = message.get_body(("plain",))
    assert body is not None
    found = _LINK.search(str(body.get_content()))
    assert found, body
    return found.group(0)


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def invitation_token(
    services: Services, mailbox: MemoryBackend, app: AppRecord, address: str
) -> str:
    """Deliver the app's outbox, then the token of the last invitation mailed to ``address``."""
    assert services.delivery is not None
    await services.delivery.deliver_app(app)
    return token_of(invitation_link(mailbox, address))


async def members_of(services: Services, app: AppRecord, org_id: str) -> dict[str, list[str]]:
    async with services.router.enter(app) as conn:
        page, _ = await orgs.members(conn, org_id, limit=500)
    return {str(m.user_id): m.roles for m in page}
