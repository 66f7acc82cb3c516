"""The one authentication flow every sign-in surface drives (issue 12).

A flow is a row of the app's schema (``auth_flows``): its kind, its expiry, the
factors it has satisfied (each with its ``amr`` values and time), what it
serves (the first-party API, or a sealed authorization request of the hosted
pages) and what it is bound to (``api:<client_id>``, or ``browser:<hash of a
cookie nonce>``). Strategies (:mod:`oneauth.strategies`) verify one factor and
call :func:`satisfy`; :func:`complete` asks the policy (:func:`decide`) and,
when it allows, issues the session: first-party tokens, or the hosted pages'
browser session. The JSON API and the hosted pages are two skins over these
calls.

A sign-in that needs one factor only never writes a flow row: the flow of a
single request is *transient* (``stored=False``) and is stored only when the
policy asks for more (:class:`Pending`), so a plain password login costs no
more than it did before the engine.

Every wrong, unknown, expired, completed, other-caller or other-app flow token
gets the same ``flow_expired`` answer (the row lives in the app's own schema:
a token of app A names nothing at app B).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from starlette.requests import Request

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import AppPolicy, policy_of
from oneauth.errors import ApiError, FlowExpired, MfaEnrollmentRequired, MfaRequired
from oneauth.flows.common import first_party_session
from oneauth.identity import users as users_repo
from oneauth.identity.users import User
from oneauth.orgs import domains
from oneauth.services import Services
from oneauth.tokens.issue import ACR_MFA, ACR_SFA, acr_for
from oneauth.web import browser_session
from oneauth.web.browser_session import BrowserSession

__all__ = [
    "ACR_MFA",
    "ACR_SFA",
    "FLOW_TTL",
    "Decision",
    "Done",
    "Flow",
    "Issued",
    "NeedEnrolment",
    "NeedFactor",
    "Pending",
    "Satisfied",
    "acr_for",
    "api_binding",
    "begin",
    "browser_binding",
    "complete",
    "decide",
    "load",
    "load_by_id",
    "rekey",
    "satisfy",
    "transient",
]

FLOW_TTL = 10 * 60  # a second factor or an enrolment must follow within this
FLOW_ATTEMPTS = 5  # wrong second-factor codes before a flow is dead
PRUNE_ONE_IN = 64
TOKEN_PREFIX = "ofl_"
MAX_TOKEN_INPUT = 100
Kind = Literal["login", "signup", "step_up", "enrol"]
# mfa_factors.kind -> the strategy that uses it
_KIND_TO_FACTOR = {"totp": "totp", "webauthn": "webauthn", "recovery_codes": "recovery_code"}


@dataclass(frozen=True, slots=True)
class Satisfied:
    factor: str  # the strategy name: password, email_code, totp, ...
    amr: tuple[str, ...]
    at: int  # unix seconds


@dataclass(frozen=True, slots=True)
class Flow:
    id: uuid.UUID
    kind: Kind
    user_id: uuid.UUID | None
    satisfied: tuple[Satisfied, ...]
    serves: Mapping[str, Any]
    binding: str
    expires_at: datetime
    attempts: int = 0
    stored: bool = True  # False: a one-request flow not (yet) written

    @property
    def factors(self) -> frozenset[str]:
        return frozenset(s.factor for s in self.satisfied)

    @property
    def multi_factor(self) -> bool:
        """Two distinct factors, or one strategy that proved two at once (a
        user-verified passkey records ``mfa`` in its own ``amr``)."""
        return len(self.factors) >= 2 or any("mfa" in s.amr for s in self.satisfied)

    @property
    def amr(self) -> list[str]:
        """RFC 8176 values of every satisfied factor, plus ``mfa`` when multi-factor."""
        values = list(dict.fromkeys(v for s in self.satisfied for v in s.amr if v != "mfa"))
        if self.multi_factor:
            values.append("mfa")
        return values

    @property
    def acr(self) -> str:
        return acr_for(self.amr)


def _hash(flow_token: str) -> bytes:
    return hashlib.sha256(flow_token.encode("utf-8", "surrogatepass")).digest()


def api_binding(client_id: str) -> str:
    return f"api:{client_id}"


def browser_binding(nonce: str) -> str:
    """The binding of a hosted-page flow: the hash of a nonce kept in a cookie."""
    return "browser:" + hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).hexdigest()


def new_browser_nonce() -> str:
    return secrets.token_urlsafe(32)


def transient(
    *,
    kind: Kind,
    binding: str,
    serves: Mapping[str, Any] | None = None,
    user_id: uuid.UUID | None = None,
) -> Flow:
    """A flow of one request, written only if it has to continue (:func:`complete`)."""
    return Flow(
        id=uuid.uuid4(),
        kind=kind,
        user_id=user_id,
        satisfied=(),
        serves=dict(serves or {}),
        binding=binding,
        expires_at=datetime.now(UTC) + timedelta(seconds=FLOW_TTL),
        stored=False,
    )


_INSERT = (
    "INSERT INTO auth_flows (id, kind, secret_hash, binding, serves, user_id, satisfied,"
    " expires_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb,"
    " now() + make_interval(secs => $8)) RETURNING expires_at"
)


def _satisfied_json(items: tuple[Satisfied, ...]) -> str:
    return json.dumps([{"factor": s.factor, "amr": list(s.amr), "at": s.at} for s in items])


async def _store(conn: asyncpg.Connection, flow: Flow, ttl: int) -> tuple[Flow, str]:
    if secrets.randbelow(PRUNE_ONE_IN) == 0:
        # Dead flows are worthless; about one store in PRUNE_ONE_IN removes a batch
        # (no job to schedule, and most sign-ins never store a flow at all).
        await conn.execute(
            "DELETE FROM auth_flows WHERE id IN (SELECT id FROM auth_flows"
            " WHERE expires_at < now() - interval '1 hour' LIMIT 500)"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = await conn.fetchval(
        _INSERT,
        flow.id,
        flow.kind,
        _hash(token),
        flow.binding,
        json.dumps(dict(flow.serves)),
        flow.user_id,
        _satisfied_json(flow.satisfied),
        ttl,
    )
    return replace(flow, stored=True, expires_at=expires_at), token


async def begin(
    conn: asyncpg.Connection,
    app: AppRecord,
    *,
    kind: Kind,
    binding: str,
    serves: Mapping[str, Any] | None = None,
    user_id: uuid.UUID | None = None,
    ttl: int = FLOW_TTL,
) -> tuple[Flow, str]:
    """Start a stored flow; returns it and the flow token (shown once, stored hashed)."""
    del app  # the connection is in the app's context; the row lives in its schema
    return await _store(
        conn, transient(kind=kind, binding=binding, serves=serves, user_id=user_id), ttl
    )


def _flow(row: asyncpg.Record) -> Flow:
    satisfied = tuple(
        Satisfied(str(s["factor"]), tuple(s["amr"]), int(s["at"]))
        for s in json.loads(row["satisfied"])
    )
    return Flow(
        id=row["id"],
        kind=row["kind"],
        user_id=row["user_id"],
        satisfied=satisfied,
        serves=json.loads(row["serves"]),
        binding=row["binding"],
        expires_at=row["expires_at"],
        attempts=row["attempts"],
    )


async def load(
    conn: asyncpg.Connection,
    flow_token: str | None,
    *,
    binding: str,
    kinds: Collection[Kind] | None = None,
) -> Flow:
    """The live flow of ``flow_token``, locked until the transaction ends.

    The lock serializes two continuations of one flow (a double submit): the
    second sees the first's result. Unknown, expired, completed, another
    binding's or another kind's flow: one :class:`FlowExpired` for all.
    """
    if (
        not flow_token
        or len(flow_token) > MAX_TOKEN_INPUT
        or not flow_token.startswith(TOKEN_PREFIX)
    ):
        raise FlowExpired()
    row = await conn.fetchrow(
        "SELECT id, kind, user_id, satisfied::text AS satisfied, serves::text AS serves,"
        " binding, expires_at, attempts FROM auth_flows"
        " WHERE secret_hash = $1 AND completed_at IS NULL AND expires_at > now()"
        " AND attempts < $2 FOR UPDATE",
        _hash(flow_token),
        FLOW_ATTEMPTS,
    )
    if row is None or row["binding"] != binding:
        raise FlowExpired()
    flow = _flow(row)
    if kinds is not None and flow.kind not in kinds:
        raise FlowExpired()
    return flow


async def load_by_id(
    conn: asyncpg.Connection,
    flow_id: uuid.UUID,
    *,
    binding: str,
    kinds: Collection[Kind] | None = None,
) -> Flow:
    """:func:`load` for a flow named by a row that points at it (a federation
    request's state), not by its token: the same checks, the same lock."""
    row = await conn.fetchrow(
        "SELECT id, kind, user_id, satisfied::text AS satisfied, serves::text AS serves,"
        " binding, expires_at, attempts FROM auth_flows"
        " WHERE id = $1 AND completed_at IS NULL AND expires_at > now()"
        " AND attempts < $2 FOR UPDATE",
        flow_id,
        FLOW_ATTEMPTS,
    )
    if row is None or row["binding"] != binding:
        raise FlowExpired()
    flow = _flow(row)
    if kinds is not None and flow.kind not in kinds:
        raise FlowExpired()
    return flow


async def rekey(conn: asyncpg.Connection, flow: Flow) -> str:
    """A new token for a stored flow (the old one stops working): for a flow that
    continues after a trip elsewhere (an upstream identity provider) whose
    token the returning request does not carry."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "UPDATE auth_flows SET secret_hash = $2 WHERE id = $1", flow.id, _hash(token)
    )
    return token


async def satisfy(
    conn: asyncpg.Connection,
    flow: Flow,
    factor: str,
    amr: Collection[str],
    user_id: uuid.UUID,
) -> Flow:
    """Record that ``factor`` was verified for ``user_id``; a flow has one user."""
    if flow.user_id is not None and flow.user_id != user_id:
        raise FlowExpired()  # a strategy bug would be the only way here: fail closed
    entry = Satisfied(factor, tuple(amr), int(time.time()))
    kept = tuple(s for s in flow.satisfied if s.factor != factor)
    updated = replace(flow, user_id=user_id, satisfied=(*kept, entry))
    if flow.stored:
        await conn.execute(
            "UPDATE auth_flows SET user_id = $2, satisfied = $3::jsonb WHERE id = $1",
            flow.id,
            user_id,
            _satisfied_json(updated.satisfied),
        )
    return updated


async def count_attempt(conn: asyncpg.Connection, flow: Flow) -> int:
    """One more failed factor attempt on a stored flow; returns the new count."""
    if not flow.stored:
        return flow.attempts + 1
    value = await conn.fetchval(
        "UPDATE auth_flows SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts", flow.id
    )
    return int(value or 0)


# --- the policy's answer ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    """The flow may issue a session."""


@dataclass(frozen=True, slots=True)
class NeedFactor:
    allowed: tuple[str, ...]  # strategy names the user can use now


@dataclass(frozen=True, slots=True)
class NeedEnrolment:
    allowed: tuple[str, ...]  # strategy names the user may enrol


Decision = Done | NeedFactor | NeedEnrolment


def enrolled_factors(kinds: Collection[str]) -> frozenset[str]:
    """Strategy names of ``mfa_factors.kind`` values (recovery_codes -> recovery_code)."""
    return frozenset(_KIND_TO_FACTOR[k] for k in kinds if k in _KIND_TO_FACTOR)


def decide(
    policy: AppPolicy,
    flow: Flow,
    enrolled_factor_kinds: Collection[str],
    *,
    org_requires_mfa: bool = False,
) -> Decision:
    """May ``flow`` issue a session, or what must the user do first?

    ``enrolled_factor_kinds``: the user's confirmed ``mfa_factors`` kinds.
    ``org_requires_mfa``: the per-organization hook (issue 13 passes it when a
    member signs in for an org that requires MFA); it wins over ``mfa=off``.

    * ``off`` (and no org requirement): one factor is enough.
    * a flow that is already multi-factor: done.
    * the user has an allowed factor enrolled (``optional`` or ``required``):
      that factor is needed (optional means "asked of those who enrolled").
    * ``required`` and nothing enrolled: enrolment first.
    """
    if flow.user_id is None or not flow.satisfied:
        return NeedFactor(())  # no first factor yet: nothing to decide
    mode = "required" if org_requires_mfa else policy.mfa
    if mode == "off" or flow.multi_factor:
        return Done()
    enrolled = enrolled_factors(enrolled_factor_kinds)
    usable = tuple(f for f in policy.mfa_factors if f in enrolled and f not in flow.factors)
    if usable:
        return NeedFactor(usable)
    if mode == "required":
        return NeedEnrolment(tuple(f for f in policy.mfa_factors if f != "recovery_code"))
    return Done()


async def confirmed_kinds(conn: asyncpg.Connection, user_id: uuid.UUID) -> frozenset[str]:
    """The kinds of a user's confirmed factors (one indexed read)."""
    rows = await conn.fetch(
        "SELECT DISTINCT kind FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
        user_id,
    )
    return frozenset(r["kind"] for r in rows)


# --- completing ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issued:
    """The session a completed flow issued: first-party tokens, or a browser session
    (the caller sets ``browser_cookie`` on its response)."""

    user: User
    amr: list[str]
    tokens: dict[str, Any] | None = None
    browser_cookie: str | None = None
    browser: BrowserSession | None = None
    flow: Flow | None = None  # the completed flow (what it served: ``flow.serves``)


@dataclass(frozen=True, slots=True)
class Pending:
    """The policy wants more: the flow (now stored) continues with ``flow_token``."""

    flow: Flow
    flow_token: str
    decision: NeedFactor | NeedEnrolment
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def factors(self) -> list[str]:
        return list(self.decision.allowed)

    def error(self, **extra: Any) -> ApiError:
        """The API's 403 answer: ``mfa_required`` or ``mfa_enrollment_required``."""
        body = {"flow_token": self.flow_token, "factors": self.factors, **self.extra, **extra}
        if isinstance(self.decision, NeedEnrolment):
            return MfaEnrollmentRequired(
                "this app requires a second factor: enrol one with this flow_token"
                " (POST /v1/mfa/totp), then confirm it",
                extra=body,
            )
        return MfaRequired(
            "send a second factor to POST /v1/login/mfa with this flow_token", extra=body
        )


async def complete(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    flow: Flow,
    *,
    meta: audit.RequestMeta,
    method: str,
    flow_token: str | None = None,
    browser: Request | None = None,
    org_requires_mfa: bool = False,
    details: Mapping[str, Any] | None = None,
    user: User | None = None,
) -> Issued | Pending:
    """Ask the policy; issue the session if it allows, else store the flow.

    Runs in the transaction that verified the last factor, so the factor's use
    (a TOTP step, a recovery code) and the session commit together. ``browser``:
    the hosted page's request (a browser session, rotating whatever session its
    cookie named); None: the first-party client's tokens. ``user``: the flow's
    user row if the caller has it (saves a read). The caller raises
    ``Pending.error()`` (API) or shows the next page (hosted) after the commit.
    """
    user_id = flow.user_id
    assert user_id is not None
    policy = policy_of(app)
    # The user's factors matter only when the policy may ask for one.
    asks = not flow.multi_factor and (policy.mfa != "off" or org_requires_mfa)
    kinds = await confirmed_kinds(conn, user_id) if asks else frozenset[str]()
    decision = decide(policy, flow, kinds, org_requires_mfa=org_requires_mfa)
    if not isinstance(decision, Done):
        # A flow that waits for an enrolment is an "enrol" flow: its token opens
        # only the enrolment calls, never /v1/login/mfa (and a "login" flow's
        # token never enrols a factor: that would skip the enrolled one).
        kind: Kind = "enrol" if isinstance(decision, NeedEnrolment) else flow.kind
        if not flow.stored:
            flow, flow_token = await _store(conn, replace(flow, kind=kind), FLOW_TTL)
        elif kind != flow.kind:
            await conn.execute("UPDATE auth_flows SET kind = $2 WHERE id = $1", flow.id, kind)
            flow = replace(flow, kind=kind)
        assert flow_token is not None
        return Pending(flow, flow_token, decision)
    if user is None or user.id != user_id:
        user = await users_repo.by_id(conn, user_id)
    if user is None or user.status != "active":
        raise FlowExpired()
    # Domain auto-join (issue 13): a verified address at an org's verified
    # domain joins orgs with policy "automatic" (no query if unverified).
    await domains.join_automatic(conn, user, meta=meta)
    if flow.stored:
        await conn.execute("UPDATE auth_flows SET completed_at = now() WHERE id = $1", flow.id)
    amr = flow.amr
    if browser is None:
        tokens, _ = await first_party_session(
            services, app, conn, user, amr=amr, method=method, meta=meta
        )
        return Issued(user, amr, tokens=tokens, flow=flow)
    raw, session = await browser_session.create(
        conn,
        user_id=user.id,
        email=user.email,
        amr=amr,
        ttl=policy_of(app).session_absolute_ttl,
        ip_hash=meta.ip_hash,
        user_agent=meta.user_agent,
    )
    # Rotated at sign-in: whatever the browser held before is retired (no fixation).
    await browser_session.replace_presented(conn, browser, app.app_id, session)
    await audit.record(
        conn,
        "auth.login",
        "success",
        meta,
        actor_type="user",
        actor_id=user.sub,
        target_type="browser_session",
        target_id=str(session.id),
        details={"method": method, "via": "hosted_page", **(details or {})},
    )
    return Issued(user, amr, browser_cookie=raw, browser=session, flow=flow)


async def session_satisfies(
    conn: asyncpg.Connection,
    app: AppRecord,
    user_id: uuid.UUID,
    amr: Collection[str],
    *,
    org_requires_mfa: bool = False,
) -> bool:
    """Would the policy let a sign-in with ``amr`` issue a session now?

    For a browser session made earlier (say, before the user enrolled a factor
    or the app began to require one): the authorization endpoint treats one
    that falls short as no session at all (a new sign-in, or ``login_required``
    under ``prompt=none``)."""
    policy = policy_of(app)
    if "mfa" in amr or (policy.mfa == "off" and not org_requires_mfa):
        return True
    flow = replace(
        transient(kind="login", binding="browser:", user_id=user_id),
        satisfied=(Satisfied("session", tuple(amr), 0),),
    )
    decision = decide(
        policy, flow, await confirmed_kinds(conn, user_id), org_requires_mfa=org_requires_mfa
    )
    return isinstance(decision, Done)
