"""What every email flow shares: links, drafts, the send throttle, redeeming a token.

Links point only where the app allows links (P6, B1): its hosted pages under
``{public_url}/apps/{app_id}/...``, or a URL the operator listed in the app
setting ``link_urls``, matched exactly. Never an OAuth client's redirect URI:
a client (perhaps a third party) that registered one would otherwise receive
a reset link for any user, or a magic link for a flow it started itself. The
hosted pages ask for a click (POST) before using the token, so mail scanners
that fetch every link cannot burn a single-use link.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import TooManyRequests, ValidationFailed
from oneauth.identity import one_time, throttle
from oneauth.identity.users import InvalidEmail, normalize_email
from oneauth.mail import outbox
from oneauth.mail import throttle as mail_throttle
from oneauth.services import Services

CODE_TTL = 10 * 60  # P5: one-time codes live <= 10 minutes


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def mask_email(email: str) -> str:
    """``j***@example.com``: enough to recognise, not enough to harvest."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


def normalize_or_fail(email: str) -> str:
    try:
        return normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationFailed(str(exc), extra={"field": "email"}) from None


@dataclass
class Mailer:
    """One app's mail helpers for one request."""

    services: Services
    app: AppRecord

    @cached_property
    def macs(self) -> one_time.Macs:
        return one_time.Macs(self.services.settings.master_key, self.app.app_id)

    @cached_property
    def names(self) -> throttle.Names:
        """Keyed names of addresses for the throttle and the audit log."""
        return throttle.Names(self.services.settings.master_key, self.app.app_id)

    def page(self, path: str) -> str:
        return f"{self.services.settings.issuer_for(self.app.app_id)}/{path}"

    def link_base(self, page: str, redirect_uri: str | None) -> str:
        """The hosted ``page``, or ``redirect_uri`` if it is in the app's ``link_urls``
        (exact string match, P6). Checked before anything is stored or mailed."""
        if redirect_uri is None:
            return self.page(page)
        if redirect_uri not in policy_of(self.app).link_urls:
            raise ValidationFailed(
                "redirect_uri is not one of this app's link_urls (set by the operator)",
                extra={"field": "redirect_uri"},
            )
        return redirect_uri

    def draft(
        self,
        kind: str,
        recipient: str,
        *,
        context: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
        ttl: int | None = None,
    ) -> outbox.Draft:
        return outbox.draft(
            self.services.box,
            self.app.app_id,
            kind,
            recipient,
            context=context,
            secrets=secrets,
            max_attempts=self.services.settings.email_max_attempts,
            ttl=ttl,
        )

    def link_and_code(
        self, purpose: one_time.Purpose, base: str, *, link_ttl: int
    ) -> tuple[str, one_time.Issue, dict[str, str]]:
        """A flow token, a link token and a 6-digit code for ``purpose``: the MACs to
        store and the raw values for the message (the only place they live)."""
        flow, token, code = one_time.new_secret(), one_time.new_secret(), one_time.new_code()
        flow_hash = self.macs.flow(purpose, flow)
        issue = one_time.Issue(
            purpose,
            token_hash=self.macs.link(purpose, token),
            code_hash=self.macs.code(purpose, flow_hash, code),
            flow_hash=flow_hash,
            ttl=link_ttl,
            code_ttl=CODE_TTL,
        )
        return flow, issue, {"link": with_query(base, token=token), "code": code}

    async def request_for_address(
        self,
        conn: asyncpg.Connection,
        email_n: str,
        issue: one_time.Issue,
        draft: outbox.Draft,
        meta: audit.RequestMeta,
        event: str,
        *,
        only_unverified: bool = False,
        details: dict[str, Any] | None = None,
    ) -> int | None:
        """Throttle, then store the one-time value and queue its mail only if the
        account exists, auditing the same way either way (P4). Returns the wait
        when throttled; the caller raises ``too_many`` after its transaction."""
        wait = await self.throttled(conn, email_n, meta, event)
        if wait is not None:
            return wait
        issued = await one_time.issue_for_address(
            conn, self.app.app_id, email_n, issue, draft, only_unverified=only_unverified
        )
        await audit.record(
            conn,
            event,
            "success",
            meta,
            target_type="user" if issued else "account",
            target_id=str(issued.user_id) if issued else self.names.account(email_n),
            details={**(details or {}), "queued": issued is not None},
        )
        return None

    async def throttled(
        self, conn: asyncpg.Connection, address: str, meta: audit.RequestMeta, event: str
    ) -> int | None:
        """Count a message for this address, requester and IP; audit and return the wait
        if over."""
        wait = await mail_throttle.take(conn, self.names, address, meta.ip_hash)
        if wait is not None:
            await audit.record(
                conn,
                event,
                "denied",
                meta,
                target_type="account",
                target_id=self.names.account(address),
                details={"reason": "mail_throttled"},
            )
        return wait


def too_many(wait: int) -> TooManyRequests:
    return TooManyRequests(
        "too many messages asked for; wait before trying again",
        headers={"retry-after": str(wait)},
    )


@dataclass(frozen=True, slots=True)
class Redemption:
    found: one_time.Found | None
    reason: str  # "ok", or why not (audit only; the caller answers the same for all)
    # The flow token of the request that issued it came along (a code always
    # does; a link when the client sent it too): the proof and the request are
    # one party (P7).
    flow_bound: bool = False


async def redeem(
    conn: asyncpg.Connection,
    macs: one_time.Macs,
    purpose: one_time.Purpose,
    *,
    token: str | None,
    flow_token: str | None,
    code: str | None,
    link_needs_flow: bool = False,
    consume: bool = True,
) -> Redemption:
    """Check a link (``token``) or a code (``flow_token`` + ``code``) and use it up.

    A wrong code counts against that code's attempts (the row is locked, so
    concurrent guesses are serialized); at ``max_attempts`` the code is dead.
    The caller must let the transaction commit (raise after ``async with``).
    """
    if token is not None:
        if len(token) > one_time.MAX_SECRET_INPUT:
            return Redemption(None, "malformed")
        # Found by its MAC through a unique index: the MAC is keyed, so timing
        # of the lookup tells nothing about any stored value.
        found = await one_time.by_link(conn, purpose, macs.link(purpose, token))
        if found is None:
            return Redemption(None, "unknown")
        if not found.link_usable:
            return Redemption(None, "used" if found.used else "expired_or_unbound")
        flow_bound = (
            flow_token is not None
            and len(flow_token) <= one_time.MAX_SECRET_INPUT
            and found.flow_hash is not None
            and hmac.compare_digest(macs.flow(purpose, flow_token), found.flow_hash)
        )
        if link_needs_flow and not flow_bound:
            return Redemption(None, "other_browser")
    elif flow_token is not None and code is not None:
        if len(flow_token) > one_time.MAX_SECRET_INPUT:
            return Redemption(None, "malformed")
        flow_hash = macs.flow(purpose, flow_token)
        found = await one_time.by_flow(conn, purpose, flow_hash)
        if found is None:
            return Redemption(None, "unknown")
        if not found.code_usable or found.code_hash is None:
            return Redemption(None, "used" if found.used else "expired_locked_or_unbound")
        digits = one_time.clean_code(code)
        expected = found.code_hash
        presented = macs.code(purpose, flow_hash, digits or "")
        if digits is None or not hmac.compare_digest(presented, expected):
            await one_time.count_failed_attempt(conn, found.id)
            return Redemption(None, "wrong_code")
        flow_bound = True
    else:
        return Redemption(None, "missing")
    if consume and not await one_time.consume(conn, found.id):
        return Redemption(None, "used")
    return Redemption(found, "ok", flow_bound)
