"""Email domains of an organization and domain auto-join (JIT), issue 13.

The operator adds a domain to an org and marks it verified (``oneauth orgs
domains verify``; no DNS check here). A verified domain belongs to one org of
the app at most (a unique index; verifying takes a lock of the domain first,
so two orgs racing for it get one ``domain_taken``, never a 500).

A user whose email is at a verified domain of an org, **and verified**, may
join it with the org's default role, by the org's ``join_policy``: ``off``
(never), ``offer`` (``offers`` lists it; the user joins with ``join_offered``),
``automatic`` (``join_automatic``, called where a verified email becomes
known: sign-in completion and email verification). Never on an unverified
email: the domain proves nothing until the mailbox answered. Matching is exact
(``sub.example.com`` is not ``example.com``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from oneauth import audit
from oneauth.errors import DomainNotFound, DomainTaken, OrgNotFound
from oneauth.identity.users import User, stored_email_key
from oneauth.orgs import names, service
from oneauth.orgs.actor import Actor


@dataclass(frozen=True, slots=True)
class Domain:
    org_id: str
    domain: str
    created_at: datetime
    verified_at: datetime | None

    @property
    def verified(self) -> bool:
        return self.verified_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "domain": self.domain,
            "verified": self.verified,
            "created_at": self.created_at.isoformat(),
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
        }


_COLUMNS = "org_id, domain, created_at, verified_at"


def _domain(row: asyncpg.Record) -> Domain:
    return Domain(row["org_id"], row["domain"], row["created_at"], row["verified_at"])


async def _audit(
    conn: asyncpg.Connection,
    event: str,
    actor: Actor,
    meta: audit.RequestMeta,
    org_id: str,
    domain: str,
) -> None:
    await audit.record(
        conn,
        event,
        "success",
        meta,
        actor_type=actor.type,
        actor_id=actor.id,
        target_type="organization",
        target_id=org_id,
        details={"domain": domain},
    )


async def add(
    conn: asyncpg.Connection,
    org_id: str,
    domain: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Domain:
    """List a domain for the org (unverified); adding it again changes nothing."""
    org = await service.require_org(conn, org_id)
    name = names.domain(domain)
    row = await conn.fetchrow(
        f"INSERT INTO org_domains (org_id, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        f" RETURNING {_COLUMNS}",
        org.id,
        name,
    )
    if row is None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM org_domains WHERE org_id = $1 AND domain = $2", org.id, name
        )
    else:
        await _audit(conn, "org.domain.add", actor, meta, org.id, name)
    assert row is not None
    return _domain(row)


async def verify(
    conn: asyncpg.Connection,
    org_id: str,
    domain: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Domain:
    """Mark the org's domain verified (the operator checked it); ``DomainTaken``
    if another org of this app verified it first."""
    org = await service.require_org(conn, org_id)
    name = names.domain(domain)
    # One owner per verified domain: serialize verifications of this domain in
    # this app (schema), so the unique index is never what answers.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':org_domain:' || $1))", name
    )
    owner = await conn.fetchval(
        "SELECT org_id FROM org_domains WHERE domain = $1 AND verified_at IS NOT NULL", name
    )
    if owner is not None and owner != org.id:
        raise DomainTaken(extra={"field": "domain"})
    row = await conn.fetchrow(
        "UPDATE org_domains SET verified_at = coalesce(verified_at, now())"
        f" WHERE org_id = $1 AND domain = $2 RETURNING {_COLUMNS}",
        org.id,
        name,
    )
    if row is None:
        raise DomainNotFound(
            f"add {name} to the organization first (orgs domains add)", extra={"field": "domain"}
        )
    if owner is None:
        await _audit(conn, "org.domain.verify", actor, meta, org.id, name)
    return _domain(row)


async def remove(
    conn: asyncpg.Connection,
    org_id: str,
    domain: str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> None:
    """Drop a domain from the org (members who joined through it stay members)."""
    org = await service.require_org(conn, org_id)
    name = names.domain(domain)
    gone = await conn.fetchval(
        "DELETE FROM org_domains WHERE org_id = $1 AND domain = $2 RETURNING domain", org.id, name
    )
    if gone is None:
        raise DomainNotFound(extra={"field": "domain"})
    await _audit(conn, "org.domain.remove", actor, meta, org.id, name)


async def list_domains(conn: asyncpg.Connection, org_id: str) -> list[Domain]:
    org = await service.require_org(conn, org_id)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM org_domains WHERE org_id = $1 ORDER BY domain", org.id
    )
    return [_domain(r) for r in rows]


# The orgs a user may join by their email's domain under ``policy``: the
# domain verified for the org, the org active, the user's address verified
# (read here, not trusted from the caller) and still the one we matched on,
# not a member yet.
_CANDIDATES = f"""
SELECT {service.ORG_COLUMNS}
FROM org_domains d
JOIN organizations o ON o.id = d.org_id
JOIN users u ON u.id = $1
WHERE d.domain = $2 AND d.verified_at IS NOT NULL
  AND o.status = 'active' AND o.join_policy = $3
  AND u.email_verified AND u.status = 'active' AND u.email_normalized = $4
  AND NOT EXISTS (SELECT 1 FROM org_members m WHERE m.org_id = o.id AND m.user_id = u.id)
ORDER BY o.slug
"""


async def _candidates(
    conn: asyncpg.Connection, user_id: uuid.UUID, email_normalized: str, policy: str
) -> list[service.Org]:
    domain = names.email_domain(email_normalized)
    if domain is None:
        return []
    rows = await conn.fetch(_CANDIDATES, user_id, domain, policy, email_normalized)
    return [service.org_from_row(r) for r in rows]


async def offers(conn: asyncpg.Connection, user: User) -> list[service.Org]:
    """Orgs with policy ``offer`` the user may join by their verified email's domain."""
    if not user.email_verified:
        return []
    return await _candidates(conn, user.id, stored_email_key(user.email), "offer")


async def join_offered(
    conn: asyncpg.Connection,
    user: User,
    org_id: str,
    *,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> service.Membership:
    """Accept an offer from ``offers``; ``OrgNotFound`` for any other org."""
    offered = {o.id: o for o in await offers(conn, user)}
    org = offered.get(org_id) or next((o for o in offered.values() if o.slug == org_id), None)
    if org is None:
        raise OrgNotFound(extra={"field": "org_id"})
    return await service.join(
        conn, org, user.id, roles=None, via="domain", actor=Actor.user(user.id), meta=meta
    )


async def join_automatic_address(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    email_normalized: str,
    *,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> list[service.Org]:
    """Join every org with policy ``automatic`` that owns this verified address's
    domain (with the org's default role); returns the orgs joined."""
    joined = await _candidates(conn, user_id, email_normalized, "automatic")
    for org in joined:
        await service.join(
            conn, org, user_id, roles=None, via="domain", actor=Actor.user(user_id), meta=meta
        )
    return joined


async def join_automatic(
    conn: asyncpg.Connection, user: User, *, meta: audit.RequestMeta = audit.SYSTEM
) -> list[service.Org]:
    """``join_automatic_address`` for a user row (sign-in completion). A user whose
    email is not verified costs no query."""
    if not user.email_verified:
        return []
    return await join_automatic_address(conn, user.id, stored_email_key(user.email), meta=meta)
