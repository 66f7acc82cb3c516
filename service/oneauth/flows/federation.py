"""Federation's flows for the surfaces (issue 14): start, callback, link, hand-off code.

The protocol, the linking rules and the records are fed-core's
(:mod:`oneauth.strategies.upstream`, :mod:`oneauth.federation`); this module is
what the hosted pages (:mod:`oneauth.web.federation_pages`) and the API
(:mod:`oneauth.api.federation`) call, so both stay thin.

After the upstream factor (a ``finish`` run by the strategy in the transaction
that records the sign-in), the flow goes on according to what it serves:

* the hosted authorization request (``serves.authorize``): :func:`engine.complete`
  with the browser: a second factor if the policy wants one, then consent and the
  code to the client, as after any sign-in;
* a first-party start (``serves.first_party``: one of the app's ``link_urls``, P6,
  never a client's redirect URI): a one-time code (fed-core's ``federation_codes``:
  SHA-256 stored, 2 minutes, single use) appended to that URL; the app posts it to
  ``POST /v1/federation/complete`` (:func:`complete`), which runs the engine for the
  first-party client: the token set, or 403 ``mfa_required`` with a ``flow_token``
  for ``/v1/login/mfa``. The code's row lives in the app's schema: a code of app A
  names nothing at app B. Its redemption is one guarded UPDATE: of two concurrent
  submits exactly one gets the tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from starlette.requests import Request

from oneauth import audit
from oneauth.account import linked as linked_repo
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    FeatureDisabled,
    InsufficientUserAuthentication,
    InvalidLinkOrCode,
    UnknownProvider,
    UpstreamUnavailable,
)
from oneauth.federation import providers, requests
from oneauth.flows import engine, login, mfa, passwordless
from oneauth.flows.mailing import with_query
from oneauth.identity import factors as factors_repo
from oneauth.identity.users import User
from oneauth.oauth.authorize import AuthorizationRequest
from oneauth.services import Services
from oneauth.strategies import upstream, webauthn
from oneauth.web.common import targets


class Refused(Exception):
    """A federation step refused: the page says ``message``; nothing was created."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Button:
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class HandedOff:
    """A first-party start: the browser goes to ``url`` (a link_url with the code)."""

    url: str


@dataclass(frozen=True, slots=True)
class Linked:
    """An account-page link: the provider is now linked to the signed-in user."""


@dataclass(frozen=True, slots=True)
class NeedsLink:
    """An existing local account has the upstream's verified address: the link page."""

    flow_token: str
    provider_name: str
    email: str  # masked
    form_targets: tuple[str, ...] = ()


Outcome = engine.Issued | engine.Pending | HandedOff | Linked | NeedsLink

# Refusal reasons (fed-core's, stable) whose page status is not 400.
_STATUS = {"unknown_provider": 404, "upstream_unavailable": 503}


def _refused(found: upstream.Refused) -> Refused:
    return Refused(found.reason, found.message, _STATUS.get(found.reason, 400))


async def buttons(conn: asyncpg.Connection) -> list[Button]:
    """The hosted login page's buttons: the app's enabled providers."""
    return [Button(p.id, p.label) for p in await providers.enabled(conn)]


async def begin(
    services: Services,
    app: AppRecord,
    provider_id: str,
    *,
    binding: str,
    serves: dict[str, Any],
    user_id: uuid.UUID | None,
    meta: audit.RequestMeta,
) -> str:
    """Start a sign-in at ``provider_id`` for a flow bound to this browser
    (``binding``): the upstream's authorization URL. ``user_id``: link the provider
    to that (signed-in, recently) user instead. Raises :class:`Refused`."""
    flow = engine.transient(
        kind="login", binding=binding, serves={**serves, "provider_id": provider_id}
    )
    try:
        started = await upstream.begin(
            services,
            app,
            flow,
            provider_id,
            meta=meta,
            purpose="link" if user_id is not None else "login",
            user_id=user_id,
        )
    except (UnknownProvider, UpstreamUnavailable) as exc:
        raise _refused(upstream.Refused.of(exc.code)) from None
    return started.authorize_url


def _targets(services: Services, app: AppRecord, flow: engine.Flow) -> tuple[str, ...]:
    sealed = flow.serves.get("authorize")
    authz = AuthorizationRequest.unseal(services.box, app.app_id, sealed) if sealed else None
    return targets(authz.redirect_uri) if authz else ()


def _finish(
    services: Services, app: AppRecord, meta: audit.RequestMeta, browser: Request, method: str
) -> Any:
    """What runs after the upstream factor (and after a confirmed link), in the
    transaction that recorded it: the flow goes on as it serves."""

    async def finish(
        conn: asyncpg.Connection, flow: engine.Flow, user: User, flow_token: str | None
    ) -> Outcome:
        provider_id = str(flow.serves.get("provider_id"))
        first_party = flow.serves.get("first_party")
        if isinstance(first_party, str):
            code = await upstream.issue_code(conn, user.id, provider_id, flow.amr)
            if flow.stored:
                await conn.execute(
                    "UPDATE auth_flows SET completed_at = now() WHERE id = $1", flow.id
                )
            await audit.record(
                conn,
                "federation.handoff",
                "success",
                meta,
                actor_type="user",
                actor_id=user.sub,
                target_type="identity_provider",
                target_id=provider_id,
                details={"redirect_uri": first_party},
            )
            return HandedOff(with_query(first_party, code=code))
        client_id = flow.serves.get("client_id")
        return await engine.complete(
            services,
            app,
            conn,
            flow,
            meta=meta,
            method=method,
            flow_token=flow_token,
            browser=browser,
            details={"client_id": client_id, "provider_id": provider_id} if client_id else None,
            user=user,
        )

    return finish


async def repost_targets(
    services: Services, app: AppRecord, provider_id: str, state: str
) -> tuple[str, ...]:
    """The form-action origins the form_post re-post page needs (F9): browsers check
    form-action along the submission's redirects, which end at the flow's client
    (its redirect URI's origin) or a first-party link_url. Read, never used up; ()
    for a state that names no live request (the re-posted request is refused)."""
    async with services.router.enter(app) as conn:
        serves = await requests.serves_of(conn, provider_id, state)
    if serves is None:
        return ()
    sealed = serves.get("authorize")
    if isinstance(sealed, str):
        authz = AuthorizationRequest.unseal(services.box, app.app_id, sealed)
        return targets(authz.redirect_uri) if authz else ()
    first_party = serves.get("first_party")
    return targets(first_party) if isinstance(first_party, str) else ()


async def callback(
    services: Services,
    app: AppRecord,
    provider_id: str,
    params: dict[str, str],
    *,
    nonce: str | None,
    meta: audit.RequestMeta,
    browser: Request,
) -> Outcome:
    """The upstream's answer for this browser's flow (``nonce``: its cookie). fed-core's
    strategy checks the state (single use, bound to this browser's flow), ``iss``,
    the code exchange, the ID token and the linking rules. Raises :class:`Refused`."""
    binding = engine.browser_binding(nonce) if nonce else None  # None: refused there
    outcome = await upstream.callback(
        services,
        app,
        provider_id,
        params,
        binding=binding,
        meta=meta,
        finish=_finish(services, app, meta, browser, f"upstream:{provider_id}"),
    )
    if isinstance(outcome, upstream.Refused):
        raise _refused(outcome)
    if isinstance(outcome, upstream.LinkRequired):
        return NeedsLink(
            flow_token=outcome.flow_token,
            provider_name=outcome.provider_name,
            email=outcome.email_masked,
            form_targets=_targets(services, app, outcome.flow),
        )
    if isinstance(outcome, upstream.Linked):
        return Linked()
    result: Outcome = outcome.result
    return result


LinkProof = Literal["password", "email_code", "webauthn"]


def link_proofs(services: Services, app: AppRecord) -> tuple[LinkProof, ...]:
    """How the link page lets a user prove the existing account (F11): its password;
    a code mailed to its address where the app signs in by mailed codes at all; a
    passkey where the hosted pages offer passkeys (a discoverable credential: the
    options name no credential, so they say nothing about the account's). Decided
    by the APP's settings, never by what the account has: the page looks the same
    for every account, so it tells nobody which factors one has (P4)."""
    found: list[LinkProof] = ["password"]
    if policy_of(app).passwordless:
        found.append("email_code")
    if webauthn.offered_on_hosted_pages(services.settings, app):
        found.append("webauthn")
    return tuple(found)


async def link_passkey_options(
    services: Services, app: AppRecord, flow_token: str, *, nonce: str
) -> dict[str, Any]:
    """WebAuthn request options for the link page's passkey (F11): a challenge bound
    to this browser's flow (which must hold a pending link), no allowCredentials
    (which would list the account's passkeys to someone who has proven nothing).
    Raises FlowExpired, FeatureDisabled."""
    if "webauthn" not in link_proofs(services, app):
        raise FeatureDisabled("passkeys are not offered on this app's pages")
    await upstream.pending_address(
        services, app, flow_token=flow_token, binding=engine.browser_binding(nonce)
    )
    async with services.router.enter(app) as conn:
        flow = await engine.load(
            conn, flow_token, binding=engine.browser_binding(nonce), kinds=upstream.LOGIN
        )
        public_key: dict[str, Any] = await webauthn.begin_authentication(
            conn, services.settings, app, flow_id=flow.id, user_id=None
        )
    return public_key


async def send_link_code(
    services: Services,
    app: AppRecord,
    flow_token: str,
    *,
    nonce: str,
    meta: audit.RequestMeta,
) -> str:
    """Mail a 6-digit code to the address of the account the pending link names
    (the passwordless flow's code: 10 minutes, a few attempts, throttled per
    address; P5: it works only with the returned flow token, kept by the page).
    Raises FlowExpired, FeatureDisabled (the app has no mailed codes), TooManyRequests."""
    if "email_code" not in link_proofs(services, app):
        raise FeatureDisabled("this app does not sign in with mailed codes")
    address = await upstream.pending_address(
        services, app, flow_token=flow_token, binding=engine.browser_binding(nonce)
    )
    started = await passwordless.start(services, app, address, "code", meta)
    return str(started["flow_token"])


async def confirm_link(
    services: Services,
    app: AppRecord,
    flow_token: str,
    *,
    nonce: str,
    proof: LinkProof,
    payload: dict[str, str],
    confirm: bool,
    meta: audit.RequestMeta,
    browser: Request,
) -> Outcome:
    """The link page's answer: a proof of the existing account (``password``:
    {email, password}, the password strategy: throttles, one argon2 verify;
    ``email_code``: {flow_token, code} of :func:`send_link_code`, the email_code
    strategy; ``webauthn``: {assertion} for :func:`link_passkey_options`' challenge,
    the webauthn strategy) and the confirmation, or a refusal. fed-core links only if the proof
    is for the very account the pending link names, audits and mails; then the
    flow goes on (a second factor if the policy wants it). Raises
    :class:`Refused`, or what the strategy raises (wrong password or code,
    throttled)."""
    if proof not in link_proofs(services, app):
        raise FeatureDisabled("this app does not offer that proof")
    outcome = await upstream.confirm_link(
        services,
        app,
        flow_token=flow_token,
        binding=engine.browser_binding(nonce),
        factor=proof,
        payload=payload,
        confirm=confirm,
        meta=meta,
        finish=_finish(services, app, meta, browser, "upstream+link"),
    )
    if isinstance(outcome, upstream.Refused):
        raise _refused(outcome)
    result: Outcome = outcome.result
    return result


async def complete(
    services: Services, app: AppRecord, code: str, meta: audit.RequestMeta
) -> dict[str, Any]:
    """``POST /v1/federation/complete``: the token set of a hand-off code, once.

    The code's user and upstream ``amr`` go through the engine for the app's
    first-party client, so the app's MFA policy applies as to any sign-in: raises
    the engine's ``mfa_required`` / ``mfa_enrollment_required`` (after the commit,
    the flow stored), or InvalidLinkOrCode (unknown, used, expired, another app's)."""
    outcome: engine.Issued | engine.Pending | None = None
    async with services.router.enter(app) as conn:
        binding = await login.api_binding(services, app, conn)
        redeemed = await upstream.redeem_code(conn, code)
        if redeemed is None:
            # Audited and committed; the answer follows the commit.
            await audit.record(
                conn,
                "federation.complete",
                "failure",
                meta,
                actor_type="client",
                actor_id=binding.removeprefix("api:"),
                details={"reason": "unknown_used_or_expired_code"},
            )
        else:
            user_id, amr = redeemed
            flow = engine.transient(
                kind="login", binding=binding, serves={"client_id": binding.removeprefix("api:")}
            )
            flow = await engine.satisfy(conn, flow, "upstream", amr, user_id)
            outcome = await engine.complete(services, app, conn, flow, meta=meta, method="upstream")
    if outcome is None:
        raise InvalidLinkOrCode()
    if isinstance(outcome, engine.Pending):
        raise outcome.error()  # after the commit: the flow continues at /v1/login/mfa
    assert outcome.tokens is not None
    return outcome.tokens


# --- self-service: linked identities ------------------------------------------------


def identity_json(item: linked_repo.LinkedIdentity) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "provider_id": item.provider_id,
        "provider_name": item.provider_name,
        "kind": item.kind,
        "issuer": item.issuer,
        "email": item.email,
        "email_verified": item.email_verified,
        "created_at": item.created_at.isoformat(),
        "last_login_at": item.last_login_at.isoformat() if item.last_login_at else None,
    }


async def linked(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """``GET /v1/identities``: the user's linked identities (this app's only)."""
    return [identity_json(i) for i in await linked_repo.of_user(conn, user_id)]


async def account_section(
    conn: asyncpg.Connection, user_id: uuid.UUID
) -> tuple[list[dict[str, Any]] | None, list[Button]]:
    """The account page's "Linked sign-in": the user's identities and the enabled
    providers not yet linked; (None, []) where the app has neither."""
    items = await linked(conn, user_id)
    offered = await buttons(conn)
    if not items and not offered:
        return None, []
    have = {i["provider_id"] for i in items}
    return items, [b for b in offered if b.id not in have]


UnlinkResult = Literal["unlinked", "not_found", "last"]


async def unlink_refusal(
    conn: asyncpg.Connection,
    app: AppRecord,
    user_id: uuid.UUID,
    auth_time: float | None,
    amr: Collection[str],
) -> InsufficientUserAuthentication | None:
    """Unlinking is a change of the ways in: the factor changes' rule applies (a recent
    sign-in, with the second factor if the user has one; ``mfa.change_refusal``)."""
    return mfa.change_refusal(app, auth_time, amr, await factors_repo.of_user(conn, user_id))


async def unlink(
    conn: asyncpg.Connection,
    app: AppRecord,
    user_id: uuid.UUID,
    identity_id: uuid.UUID | None,
    meta: audit.RequestMeta,
) -> UnlinkResult:
    """Unlink one identity, unless it is the user's last way to sign in: no password,
    no passkey, no mailed code (the app's ``passwordless`` with a verified address)
    and no other identity at an enabled provider. Audited either way; the caller
    answers after the commit."""
    if identity_id is None:
        return "not_found"
    ways = await linked_repo.ways_besides(conn, user_id, identity_id)
    if ways is None:
        return "not_found"
    mailed = policy_of(app).passwordless and ways.email_verified
    if not (ways.password or ways.passkeys or mailed or ways.identities):
        await audit.record(
            conn,
            "federation.unlink",
            "denied",
            meta,
            actor_type="user",
            actor_id=str(user_id),
            target_type="user_identity",
            target_id=str(identity_id),
            details={"reason": "last_way_to_sign_in"},
        )
        return "last"
    gone = await linked_repo.delete(conn, user_id, identity_id)
    if gone is None:
        return "not_found"
    await audit.record(
        conn,
        "federation.unlink",
        "success",
        meta,
        actor_type="user",
        actor_id=str(user_id),
        target_type="user_identity",
        target_id=str(identity_id),
        details={"provider_id": gone.provider_id},
    )
    return "unlinked"
