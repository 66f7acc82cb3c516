"""Who an upstream identity signs in as: the linking rules (SECURITY.md B5, P7).

The federation requirements (F1..F6, issue 14) are enforced here and in
:mod:`oneauth.strategies.upstream`.

In order, for a verified upstream response (:class:`UpstreamIdentity`):

1. An identity already linked (provider, issuer, subject): that user.
2. No usable email (none, or not an address): refused. The email and its
   ``email_verified`` came from ONE response (``upstream.profile``) and the
   provider trusts that upstream's ``email_verified``; otherwise the email is
   unverified, and an unverified upstream email NEVER links and never
   creates an account (an account created on it would be a pre-hijack: the
   real mailbox owner's later proof would leave the upstream attached).
3. No local user with that email: created just in time if the provider's
   ``jit_signup`` and the app's ``self_signup`` allow; else refused.
4. A local user with that email whose address was never proven (an
   unverified signup, perhaps a squatter's): the federated sign-in is the
   first proof of the mailbox, so the pre-hijacking protection runs (P7:
   a password set before it is cleared, every session ends), then the
   identity is linked, audited and the user mailed.
5. A local user with a proven address: NEVER linked silently. The flow
   stores a pending link and asks for proof of the local account (a sign-in
   with one of its own factors) and a confirmation
   (:func:`oneauth.strategies.upstream.confirm_link`).

``linking = never`` refuses 4 and 5. Disabled accounts: refused. A refusal
creates nothing; the caller audits it.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.federation import identities
from oneauth.federation.identities import Identity
from oneauth.federation.providers import Provider
from oneauth.federation.upstream import UpstreamIdentity
from oneauth.identity import users as users_repo
from oneauth.identity.users import InvalidEmail, User, normalize_email


@dataclass(frozen=True, slots=True)
class Existing:
    user: User
    identity: Identity


@dataclass(frozen=True, slots=True)
class Create:
    email: str
    email_normalized: str


@dataclass(frozen=True, slots=True)
class FirstProof:
    """A local account whose address was never proven (P7)."""

    user: User
    email_normalized: str


@dataclass(frozen=True, slots=True)
class NeedProof:
    """A local account with a proven address: prove it, then confirm."""

    user: User


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str


Decision = Existing | Create | FirstProof | NeedProof | Refuse


async def decide(
    conn: asyncpg.Connection, app: AppRecord, provider: Provider, found: UpstreamIdentity
) -> Decision:
    identity = await identities.find(conn, provider.id, found.issuer, found.subject)
    if identity is not None:
        user = await users_repo.by_id(conn, identity.user_id)
        if user is None or user.status != "active":
            return Refuse("account_disabled")
        return Existing(user, identity)
    if found.email is None:
        return Refuse("email_missing")
    try:
        normalized = normalize_email(found.email)
    except InvalidEmail:
        return Refuse("email_missing")
    if not found.email_verified:
        return Refuse("email_unverified")
    local = await users_repo.by_email(conn, normalized)
    if local is None:
        if not (provider.jit_signup and policy_of(app).self_signup):
            return Refuse("signup_closed")
        return Create(found.email, normalized)
    if local.status != "active":
        return Refuse("account_disabled")
    if provider.linking == "never":
        return Refuse("linking_disabled")
    if not local.email_verified:
        return FirstProof(local, normalized)
    return NeedProof(local)
