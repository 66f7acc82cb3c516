"""The upstream strategy: a sign-in at one of the app's identity providers (issue 14).

One more first factor of the flow engine. It differs from the others in one
way: the proof arrives in another request (the upstream's redirect to the
callback), so it has two halves:

* :func:`begin` stores a federation request bound to the flow (state hash,
  nonce, sealed PKCE verifier, provider, 10 minutes, single use) and returns
  the upstream's authorization URL.
* :func:`callback` finds the request by ``state`` (consumed at once: a replayed
  state finds nothing), checks that the flow belongs to this browser, runs the
  protocol (:mod:`oneauth.federation.upstream`) with no database transaction
  open, then applies the linking rules (:mod:`oneauth.federation.linking`)
  and, for a sign-in, ``engine.satisfy(conn, flow, "upstream:<provider_id>",
  amr, user_id)`` and the caller's ``finish`` in the same transaction.

``amr``: ``["fed"]`` (the value Microsoft Entra uses for a federated sign-in;
RFC 8176 registers none). The upstream's own amr values (RFC 8176 ones only)
are added only if the provider has ``trust_amr``; then an upstream ``mfa``
makes the flow multi-factor. Without it the upstream sign-in is ONE factor:
a user with a second factor enrolled is asked for it (M1), acr stays sfa.

Every outcome is audited (``federation.login``, ``federation.link``,
``federation.link_required``, ``federation.callback`` denied with the
refusal reason); a refusal creates nothing (the consumed state aside).
See :mod:`oneauth.federation` for the calling conventions.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import asyncpg
import structlog

from oneauth import audit, webhooks
from oneauth.apps.models import AppRecord
from oneauth.errors import FlowExpired, UnknownProvider, UpstreamUnavailable, ValidationFailed
from oneauth.federation import identities, linking, providers, requests, tokens, upstream
from oneauth.federation.providers import Provider
from oneauth.federation.upstream import UpstreamError, UpstreamIdentity
from oneauth.flows import engine
from oneauth.flows.engine import Flow
from oneauth.flows.mailing import Mailer, mask_email
from oneauth.identity import addresses
from oneauth.identity import users as users_repo
from oneauth.identity.users import User
from oneauth.mail import outbox
from oneauth.services import Services
from oneauth.strategies.base import Payload, StrategyKind, Then

__all__ = [
    "AMR",
    "STRATEGY",
    "Finish",
    "LinkRequired",
    "Linked",
    "Outcome",
    "Refused",
    "SignedIn",
    "Started",
    "begin",
    "callback",
    "confirm_link",
    "factor_name",
    "issue_code",
    "pending_address",
    "redeem_code",
]

T = TypeVar("T")
AMR = ("fed",)
# Runs in the transaction that records the sign-in, after engine.satisfy; gets
# the flow's (new) token, for engine.complete(..., flow_token=...).
Finish = Callable[[asyncpg.Connection, Flow, User, str], Awaitable[T]]
log = structlog.get_logger("oneauth.federation")
LOGIN: tuple[engine.Kind] = ("login",)

REFUSAL_MESSAGES = {
    "unknown_provider": "This sign-in provider is not available for this app.",
    "invalid_state": "This sign-in link has expired or was already used. Start again.",
    "upstream_error": "The sign-in provider did not sign you in.",
    "issuer_mismatch": "The answer did not come from the expected sign-in provider.",
    "upstream_unavailable": "The sign-in provider is not answering. Try again later.",
    "token_exchange_failed": "The sign-in provider refused to complete the sign-in.",
    "invalid_id_token": "The sign-in provider's answer could not be verified.",
    "nonce_mismatch": "The sign-in provider's answer does not belong to this sign-in.",
    "userinfo_mismatch": "The sign-in provider's answer could not be verified.",
    "email_missing": "The sign-in provider did not share an email address.",
    "email_unverified": "The sign-in provider has not verified your email address.",
    "signup_closed": "There is no account for you here, and this app does not create one.",
    "linking_disabled": "An account with this email exists; it cannot be used with this"
    " sign-in provider. Sign in the way you usually do.",
    "account_disabled": "This account cannot sign in.",
    "identity_in_use": "This sign-in provider account is already linked to another account.",
    "link_not_confirmed": "The link was not confirmed; nothing was changed.",
    "wrong_account": "That is not the account this sign-in provider account would be linked"
    " to; nothing was changed.",
}


def factor_name(provider_id: str) -> str:
    return f"upstream:{provider_id}"


@dataclass(frozen=True, slots=True)
class Started:
    authorize_url: str
    flow: Flow
    flow_token: str | None  # set when begin stored a transient flow


@dataclass(frozen=True, slots=True)
class SignedIn(Generic[T]):
    user: User
    amr: list[str]
    flow: Flow
    result: T  # what ``finish`` returned


@dataclass(frozen=True, slots=True)
class LinkRequired:
    """A local account with this (verified) email exists: the user proves it and
    confirms on the hosted page (:func:`confirm_link` with ``flow_token``)."""

    pending_id: uuid.UUID
    flow: Flow
    flow_token: str
    email_masked: str
    provider_id: str
    provider_name: str


@dataclass(frozen=True, slots=True)
class Linked:
    """A ``purpose="link"`` round trip ended: the identity is now the user's."""

    user_id: uuid.UUID
    identity_id: uuid.UUID
    provider_id: str


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    message: str

    @classmethod
    def of(cls, reason: str) -> Refused:
        return cls(reason, REFUSAL_MESSAGES.get(reason, "The sign-in did not succeed."))


Outcome = SignedIn[T] | LinkRequired | Linked | Refused


def _redirect_uri(services: Services, app: AppRecord, provider_id: str) -> str:
    return providers.callback_url(services.settings.issuer_for(app.app_id), provider_id)


def _amr(provider: Provider, found: UpstreamIdentity) -> list[str]:
    extra = [a for a in found.amr if a not in AMR] if provider.trust_amr else []
    return [*AMR, *extra]


# --- begin -------------------------------------------------------------------------


async def begin(
    services: Services,
    app: AppRecord,
    flow: Flow,
    provider_id: str,
    *,
    meta: audit.RequestMeta,
    purpose: requests.Purpose = "login",
    user_id: uuid.UUID | None = None,
) -> Started:
    """Start a sign-in (or, ``purpose="link"``, a link for ``user_id``) at the
    provider; the caller redirects the browser to ``authorize_url``.

    Raises UnknownProvider (unknown, disabled or another app's id) and
    UpstreamUnavailable (discovery failed or timed out; nothing stored)."""
    if purpose == "link" and user_id is None:
        raise ValidationFailed("linking needs the signed-in user")
    async with services.router.enter(app) as conn:
        provider = await providers.load(conn, provider_id)
    if provider is None:
        raise UnknownProvider()
    try:
        # No connection is held while the upstream answers (or does not).
        found_meta = await upstream.metadata(provider)
    except UpstreamError as exc:
        log.warning("federation_discovery_failed", provider_id=provider.id, reason=exc.detail)
        raise UpstreamUnavailable() from exc
    secrets_ = requests.new_secrets()
    url = upstream.authorization_url(
        provider,
        found_meta,
        redirect_uri=_redirect_uri(services, app, provider.id),
        state=secrets_.state,
        nonce=secrets_.nonce,
        code_verifier=secrets_.verifier,
    )
    token: str | None = None
    async with services.router.enter(app) as conn:
        if not flow.stored:
            flow, token = await engine.begin(
                conn,
                app,
                kind=flow.kind,
                binding=flow.binding,
                serves=flow.serves,
                user_id=flow.user_id if purpose == "login" else user_id,
            )
        await requests.store(
            conn,
            services.box,
            app.app_id,
            flow_id=flow.id,
            provider_id=provider.id,
            found=secrets_,
            purpose=purpose,
            user_id=user_id,
        )
        await audit.record(
            conn,
            "federation.start",
            "success",
            meta,
            actor_type="user" if user_id else None,
            actor_id=str(user_id) if user_id else None,
            target_type="identity_provider",
            target_id=provider.id,
            details={"purpose": purpose, "flow_id": str(flow.id)},
        )
    return Started(url, flow, token)


# --- callback ----------------------------------------------------------------------


async def _refuse(
    conn: asyncpg.Connection,
    reason: str,
    meta: audit.RequestMeta,
    provider_id: str | None,
    **details: Any,
) -> Refused:
    await audit.record(
        conn,
        "federation.callback",
        "denied",
        meta,
        target_type="identity_provider",
        target_id=provider_id,
        details={"reason": reason, **details},
    )
    return Refused.of(reason)


async def _refuse_now(
    services: Services,
    app: AppRecord,
    reason: str,
    meta: audit.RequestMeta,
    provider_id: str | None,
    **details: Any,
) -> Refused:
    async with services.router.enter(app) as conn:
        return await _refuse(conn, reason, meta, provider_id, **details)


def _seal_tokens(
    services: Services, app: AppRecord, provider: Provider, found: UpstreamIdentity
) -> str | None:
    """F10: the upstream's tokens sealed to (app, provider, identity), only with
    the provider's ``keep_tokens``."""
    if not provider.keep_tokens or not found.tokens:
        return None
    return tokens.seal(
        services.box, app.app_id, provider.id, found.issuer, found.subject, found.tokens
    )


async def callback(
    services: Services,
    app: AppRecord,
    provider_id: str,
    params: Mapping[str, str],
    *,
    binding: str | None,
    meta: audit.RequestMeta,
    finish: Finish[T],
) -> SignedIn[T] | LinkRequired | Linked | Refused:
    """The upstream's redirect came back: who signed in, and what happens now.

    ``params``: the authorization response as received (query, or form for
    Apple). ``binding``: this browser's flow binding (None: no cookie). Never
    raises for anything the upstream or the browser sent: every failure is a
    :class:`Refused` (audited). ``finish`` may raise (engine.complete does
    for a disabled user): the transaction then rolls back."""
    state = params.get("state") or ""
    async with services.router.enter(app) as conn:
        provider = await providers.load(conn, provider_id)
        if provider is None:
            return await _refuse(conn, "unknown_provider", meta, None)
        consumed = await requests.consume(conn, services.box, app.app_id, state)
        if consumed is None or consumed.provider_id != provider.id:
            return await _refuse(conn, "invalid_state", meta, provider.id)
        if binding is None:
            return await _refuse(conn, "invalid_state", meta, provider.id, browser="other")
        try:
            await engine.load_by_id(conn, consumed.flow_id, binding=binding)
        except FlowExpired:
            return await _refuse(conn, "invalid_state", meta, provider.id, browser="other")
        secret = providers.open_secret(services.box, app.app_id, provider)
    # The state is used up (committed): whatever happens next, it never works again.
    try:
        found_meta = await upstream.metadata(provider)
        code = upstream.check_response(provider, found_meta, params)
        found = await upstream.finish(
            provider,
            found_meta,
            secret,
            code=code,
            redirect_uri=_redirect_uri(services, app, provider.id),
            code_verifier=consumed.verifier,
            nonce=consumed.nonce,
        )
    except UpstreamError as exc:
        return await _refuse_now(services, app, exc.reason, meta, provider.id, detail=exc.detail)
    if provider.kind == "apple" and found.name is None:
        # Apple posts the name once, beside the code (F9): display only, never its email.
        found = replace(found, name=upstream.apple_user_name(params.get("user")))
    async with services.router.enter(app) as conn:
        try:
            flow = await engine.load_by_id(conn, consumed.flow_id, binding=binding)
        except FlowExpired:
            return await _refuse(conn, "invalid_state", meta, provider.id)
        if consumed.purpose == "link":
            assert consumed.user_id is not None
            return await _link_for(
                services, app, conn, provider, found, consumed.user_id, flow, meta
            )
        decision = await linking.decide(conn, app, provider, found)
        if isinstance(decision, linking.Refuse):
            return await _refuse(conn, decision.reason, meta, provider.id)
        if isinstance(decision, linking.NeedProof):
            sealed = _seal_tokens(services, app, provider, found)
            return await _need_proof(conn, provider, found, decision.user, flow, meta, sealed)
        password_cleared = False
        if isinstance(decision, linking.Existing):
            user = decision.user
            await identities.touch(
                conn,
                decision.identity.id,
                email=found.email,
                email_verified=found.email_verified,
                tokens_sealed=_seal_tokens(services, app, provider, found),
            )
        else:
            if isinstance(decision, linking.Create):
                created = await identities.create_user(
                    conn, email=decision.email, email_normalized=decision.email_normalized
                )
                if created is None:  # a concurrent signup took the address: start again
                    return await _refuse(conn, "invalid_state", meta, provider.id, race=True)
                user = created
                event = "user.signup"
                await webhooks.emit(
                    conn,
                    app,
                    "user.created",
                    {"user_id": user.sub, "email": user.email, "via": f"federation:{provider.id}"},
                )
            else:
                # P7: the upstream proved a mailbox nobody had proven: whatever a
                # squatter set up on it (password, sessions) ends here.
                user = decision.user
                proof = await addresses.mailbox_proven(
                    conn,
                    user.id,
                    decision.email_normalized,
                    method=factor_name(provider.id),
                    meta=meta,
                )
                password_cleared = bool(proof and proof.password_cleared)
                event = "federation.link"
            linked = await identities.link(
                conn,
                user_id=user.id,
                provider_id=provider.id,
                issuer=found.issuer,
                subject=found.subject,
                email=found.email,
                email_verified=found.email_verified,
                tokens_sealed=_seal_tokens(services, app, provider, found),
            )
            if linked is None:  # a concurrent callback linked it: start again
                return await _refuse(conn, "invalid_state", meta, provider.id, race=True)
            await audit.record(
                conn,
                event,
                "success",
                meta,
                actor_type="user",
                actor_id=user.sub,
                target_type="user_identity",
                target_id=str(linked.id),
                details={
                    "provider_id": provider.id,
                    "via": "federation",
                    "first_proof": isinstance(decision, linking.FirstProof),
                },
            )
            if isinstance(decision, linking.FirstProof):
                await _mail_linked(services, app, conn, user, provider, found, password_cleared)
            if isinstance(decision, linking.Create):
                user = await _reload(conn, user)
        return await _sign_in(conn, provider, found, user, flow, meta, finish)


async def _reload(conn: asyncpg.Connection, user: User) -> User:
    again = await users_repo.by_id(conn, user.id)
    return again or user


async def _sign_in(
    conn: asyncpg.Connection,
    provider: Provider,
    found: UpstreamIdentity,
    user: User,
    flow: Flow,
    meta: audit.RequestMeta,
    finish: Finish[T],
) -> SignedIn[T] | Refused:
    if flow.user_id is not None and flow.user_id != user.id:
        return await _refuse(conn, "wrong_account", meta, provider.id)
    amr = _amr(provider, found)
    flow = await engine.satisfy(conn, flow, factor_name(provider.id), amr, user.id)
    token = await engine.rekey(conn, flow)
    await audit.record(
        conn,
        "federation.login",
        "success",
        meta,
        actor_type="user",
        actor_id=user.sub,
        target_type="identity_provider",
        target_id=provider.id,
        details={"amr": amr},
    )
    result = await finish(conn, flow, user, token)
    return SignedIn(user, flow.amr, flow, result)


async def _need_proof(
    conn: asyncpg.Connection,
    provider: Provider,
    found: UpstreamIdentity,
    user: User,
    flow: Flow,
    meta: audit.RequestMeta,
    tokens_sealed: str | None,
) -> LinkRequired:
    pending_id = await requests.add_pending(
        conn,
        flow_id=flow.id,
        provider_id=provider.id,
        user_id=user.id,
        issuer=found.issuer,
        subject=found.subject,
        email=found.email,
        email_verified=found.email_verified,
        upstream_amr=found.amr,
        tokens_sealed=tokens_sealed,  # F10: kept on the identity once the link is proven
    )
    token = await engine.rekey(conn, flow)
    await audit.record(
        conn,
        "federation.link_required",
        "success",
        meta,
        target_type="user",
        target_id=user.sub,
        details={"provider_id": provider.id, "pending_id": str(pending_id)},
    )
    return LinkRequired(pending_id, flow, token, mask_email(user.email), provider.id, provider.name)


async def _link_for(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    provider: Provider,
    found: UpstreamIdentity,
    user_id: uuid.UUID,
    flow: Flow,
    meta: audit.RequestMeta,
) -> Linked | Refused:
    """Self-service "link another provider": the signed-in user (checked by the
    caller with a recent sign-in) adds this upstream identity."""
    if flow.user_id != user_id:
        return await _refuse(conn, "wrong_account", meta, provider.id)
    existing = await identities.find(conn, provider.id, found.issuer, found.subject)
    if existing is not None and existing.user_id != user_id:
        return await _refuse(conn, "identity_in_use", meta, provider.id)
    if existing is not None:
        return Linked(user_id, existing.id, provider.id)
    linked = await identities.link(
        conn,
        user_id=user_id,
        provider_id=provider.id,
        issuer=found.issuer,
        subject=found.subject,
        email=found.email,
        email_verified=found.email_verified,
        tokens_sealed=_seal_tokens(services, app, provider, found),
    )
    if linked is None:
        return await _refuse(conn, "identity_in_use", meta, provider.id)
    await conn.execute("UPDATE auth_flows SET completed_at = now() WHERE id = $1", flow.id)
    user = await _reload_id(conn, user_id)
    await _record_link(services, app, conn, user, provider, found, linked.id, meta, "self_service")
    return Linked(user_id, linked.id, provider.id)


async def _reload_id(conn: asyncpg.Connection, user_id: uuid.UUID) -> User:
    user = await users_repo.by_id(conn, user_id)
    if user is None:
        raise FlowExpired()
    return user


async def _record_link(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    user: User,
    provider: Provider,
    found: UpstreamIdentity,
    identity_id: uuid.UUID,
    meta: audit.RequestMeta,
    how: str,
) -> None:
    await audit.record(
        conn,
        "federation.link",
        "success",
        meta,
        actor_type="user",
        actor_id=user.sub,
        target_type="user_identity",
        target_id=str(identity_id),
        details={"provider_id": provider.id, "how": how},
    )
    await _mail_linked(services, app, conn, user, provider, found, False)


async def _mail_linked(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    user: User,
    provider: Provider,
    found: UpstreamIdentity,
    password_cleared: bool,
) -> None:
    notice = Mailer(services, app).draft(
        "federation_linked",
        user.email,
        context={
            "provider_name": provider.name,
            "upstream_email": found.email or "",
            "password_cleared": password_cleared,
        },
    )
    await outbox.queue(conn, app.app_id, user.email, notice)


# --- link confirmation --------------------------------------------------------------


async def confirm_link(
    services: Services,
    app: AppRecord,
    *,
    flow_token: str,
    binding: str | None,
    factor: str,
    payload: Payload,
    confirm: bool,
    meta: audit.RequestMeta,
    finish: Finish[T],
) -> SignedIn[T] | Refused:
    """Prove the local account of a :class:`LinkRequired` and confirm the link.

    ``factor``: a first-factor strategy the account has (password, email_code,
    magic_link, webauthn) and its ``payload``. Raises what that strategy raises
    (InvalidCredentials, ...), and FlowExpired for a dead or foreign flow.
    Only when the proof is for the very account the pending link names is the
    identity linked (audited, mailed); then the flow continues with that
    factor (``finish``: engine.complete may still ask for a second factor)."""
    from oneauth.strategies import get

    if binding is None:
        raise FlowExpired()
    async with services.router.enter(app) as conn:
        flow = await engine.load(conn, flow_token, binding=binding, kinds=LOGIN)
        pending = await requests.take_pending(conn, flow.id)
        if pending is None:
            raise FlowExpired()
        if not confirm:
            return await _refuse(conn, "link_not_confirmed", meta, pending.provider_id)
    strategy = get(factor)
    if strategy.kind == "second" or factor.startswith("upstream"):
        raise ValidationFailed("prove the account with one of its own sign-in methods")

    async def then(conn: asyncpg.Connection, user: User, amr: list[str]) -> Any:
        current = await engine.load(conn, flow_token, binding=binding, kinds=LOGIN)
        link = await requests.take_pending(conn, current.id)
        if link is None:
            raise FlowExpired()
        if user.id != link.user_id:
            return await _refuse(conn, "wrong_account", meta, link.provider_id)
        provider = await providers.load(conn, link.provider_id)
        if provider is None:
            return await _refuse(conn, "unknown_provider", meta, link.provider_id)
        linked = await identities.link(
            conn,
            user_id=user.id,
            provider_id=provider.id,
            issuer=link.issuer,
            subject=link.subject,
            email=link.email,
            email_verified=link.email_verified,
            tokens_sealed=link.tokens_sealed,
        )
        if linked is None or not await requests.use_pending(conn, link.id):
            return await _refuse(conn, "identity_in_use", meta, provider.id)
        found = UpstreamIdentity(link.issuer, link.subject, link.email, link.email_verified)
        await _record_link(services, app, conn, user, provider, found, linked.id, meta, "proof")
        satisfied = await engine.satisfy(conn, current, strategy.name, amr, user.id)
        result = await finish(conn, satisfied, user, flow_token)
        return SignedIn(user, satisfied.amr, satisfied, result)

    outcome: SignedIn[T] | Refused = await strategy.verify(services, app, flow, payload, meta, then)
    return outcome


async def pending_address(
    services: Services, app: AppRecord, *, flow_token: str, binding: str | None
) -> str:
    """The address of the account a :class:`LinkRequired` would link to (this
    browser's flow only): where the link page mails a code that proves the
    account (F11). Raises FlowExpired for a dead, used or foreign flow."""
    if binding is None:
        raise FlowExpired()
    async with services.router.enter(app) as conn:
        flow = await engine.load(conn, flow_token, binding=binding, kinds=LOGIN)
        pending = await requests.take_pending(conn, flow.id)
        user = await users_repo.by_id(conn, pending.user_id) if pending else None
    if user is None:
        raise FlowExpired()
    return user.email


# --- first-party codes ----------------------------------------------------------------


async def issue_code(
    conn: asyncpg.Connection, user_id: uuid.UUID, provider_id: str | None, amr: list[str]
) -> str:
    """A one-time code (2 minutes, single use, stored hashed) for a first-party
    start's redirect; ``POST /v1/federation/complete`` redeems it."""
    return await requests.issue_code(conn, user_id, provider_id, amr)


async def redeem_code(conn: asyncpg.Connection, code: str) -> tuple[uuid.UUID, list[str]] | None:
    """The code's (user_id, amr), used up; None for unknown, used or expired."""
    return await requests.redeem_code(conn, code)


# --- the strategy object ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamStrategy:
    """The strategy's identity for the engine (``factor`` names, amr). It is not in
    ``strategies.REGISTRY``: its proof arrives through :func:`callback`, never
    as a payload of /v1/login or /v1/login/mfa."""

    name: str = "upstream"
    amr: tuple[str, ...] = AMR
    kind: StrategyKind = "first"

    async def verify(
        self,
        services: Services,
        app: AppRecord,
        flow: Flow,
        payload: Payload,
        meta: audit.RequestMeta,
        then: Then[T],
    ) -> T:
        del services, app, flow, payload, meta, then
        raise ValidationFailed("an upstream sign-in completes at its callback")


STRATEGY = UpstreamStrategy()
