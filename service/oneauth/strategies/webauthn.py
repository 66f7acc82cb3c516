"""Passkeys: WebAuthn registration and authentication (W3C WebAuthn Level 3,
https://www.w3.org/TR/webauthn-3/) with py_webauthn doing the checks of sections
7.1 and 7.2, and this module doing what a library cannot: which RP, which
origins, which challenge, whose credential, and the counter.

* RP ID (W2): the issuer's host, which every app on that host shares; or an
  app's own ``webauthn_rp_id`` under its ``webauthn_origin``. So the browser
  offers a passkey registered at app A on app B's page too: the credential is
  looked up only in B's schema (:mod:`oneauth.identity.webauthn`), the user
  handle is a random per-app value, never the user id, and the names the
  authenticator shows include the app's display name (W1).
* Challenges (W3): 32 random bytes, stored hashed server side, bound to the
  user (registration) or the sign-in flow (authentication), single use, five
  minutes. A response's challenge is read from its clientDataJSON and consumed
  before anything else, so two concurrent submissions of one assertion cannot
  both pass.
* Counter (W4): a signature counter that does not grow on a credential whose
  counter is not zero is refused and audited (a cloned authenticator).
* Attestation ``none`` (W5): we do not restrict authenticator models; the
  AAGUID is stored for the factor list only.

amr (RFC 8176): ``hwk`` for a device-bound key, ``swk`` for a backup-eligible
(synced) one, plus ``user`` when the authenticator verified the user. A
passwordless passkey sign-in always requires user verification: possession
and a PIN or biometric are two factors (amr hwk+user counts as mfa).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import asyncpg
import structlog
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json_dict, parse_client_data_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.parse_authentication_credential_json import (
    parse_authentication_credential_json,
)
from webauthn.helpers.parse_registration_credential_json import (
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from oneauth import audit, metrics
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import ApiError, Conflict, FeatureDisabled, ValidationFailed
from oneauth.flows import engine
from oneauth.flows.engine import Flow
from oneauth.identity import throttle
from oneauth.identity import users as users_repo
from oneauth.identity import webauthn as repo
from oneauth.identity.webauthn import Credential, UserVerification
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.strategies.base import Payload, StrategyKind, Then

T = TypeVar("T")

log = structlog.get_logger("oneauth.webauthn")

NAME = "webauthn"
TIMEOUT_MS = repo.CHALLENGE_TTL * 1000
MAX_NAME = 100
# COSE algorithms offered at registration, most preferred first: ES256, EdDSA, RS256.
ALGORITHMS = (-7, -8, -257)
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)


class PasskeyRefused(ApiError):
    # One answer for an unknown credential, another app's credential, a bad
    # signature, a used or expired challenge and a counter regression (W1):
    # the caller learns nothing about which it was, nor whether the credential
    # exists anywhere.
    code, status, title = "passkey_refused", 401, "The passkey was not accepted"


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """What the browser checks and what we check against (WebAuthn 5.1.3, 7.1 steps 9, 13)."""

    rp_id: str
    name: str
    origins: tuple[str, ...]
    # The issuer's own origin is allowed: the hosted pages can run the ceremonies.
    hosted: bool


def issuer_origin(settings: Settings) -> str:
    """``scheme://host[:port]`` of the public URL, as a browser writes it in clientDataJSON."""
    parts = urlsplit(settings.public_url)
    host = (parts.hostname or "").lower()
    port = parts.port
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def relying_party(settings: Settings, app: AppRecord) -> RelyingParty:
    """The app's RP: the issuer's host by default (shared by all apps on it), or the
    app's ``webauthn_rp_id`` for its own ``webauthn_origin`` (validated by the policy)."""
    policy = policy_of(app)
    issuer = issuer_origin(settings)
    issuer_host = urlsplit(issuer).hostname or ""
    if policy.webauthn_origin is None:
        return RelyingParty(issuer_host, app.display_name, (issuer,), hosted=True)
    rp_id = policy.webauthn_rp_id or (urlsplit(policy.webauthn_origin).hostname or "")
    within = issuer_host == rp_id or issuer_host.endswith("." + rp_id)
    origins = (policy.webauthn_origin, issuer) if within else (policy.webauthn_origin,)
    return RelyingParty(rp_id, app.display_name, tuple(dict.fromkeys(origins)), hosted=within)


def offered_on_hosted_pages(settings: Settings, app: AppRecord) -> bool:
    """The hosted pages offer passkeys: allowed by the app's ``mfa_factors``, and its
    RP ID covers the issuer's host (else only the app's own origin can use them)."""
    return NAME in policy_of(app).mfa_factors and relying_party(settings, app).hosted


def amr_of(credential: Credential, *, user_verified: bool) -> list[str]:
    """RFC 8176: hwk (hardware-bound key) or swk (a synced, backup-eligible key), + user."""
    amr = ["swk" if credential.backup_eligible else "hwk"]
    if user_verified:
        amr.append("user")
    return amr


def _descriptor(credential: Credential) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in credential.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=credential.credential_id, transports=transports or None)


# -- registration (WebAuthn 7.1) ---------------------------------------------


def creation_options(
    rp: RelyingParty,
    *,
    handle: bytes,
    email: str,
    existing: list[Credential],
    challenge: bytes,
    user_verification: UserVerification,
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptionsJSON, for ``parseCreationOptionsFromJSON``.

    The account names carry the app's display name: the authenticator lists
    every app's passkeys of this RP ID together, so "ada@example.com" alone would
    not say for which app a passkey is. ``excludeCredentials``: the user's own, so
    one authenticator is not registered twice (WebAuthn 5.4.3)."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=handle,
        user_name=f"{email} ({rp.name})",
        user_display_name=f"{email} · {rp.name}",
        challenge=challenge,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            # Discoverable when the authenticator can (passwordless sign-in); a security
            # key without storage still registers, as a second factor only.
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement(user_verification),
        ),
        exclude_credentials=[_descriptor(c) for c in existing],
        supported_pub_key_algs=list(ALGORITHMS),  # type: ignore[arg-type]
    )
    return options_to_json_dict(options)


@dataclass(frozen=True, slots=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]
    backup_eligible: bool
    backup_state: bool
    aaguid: uuid.UUID | None
    user_verified: bool


def parse_registration(credential: dict[str, Any]) -> tuple[RegistrationCredential, bytes]:
    """The credential and the challenge its clientDataJSON carries; 422 when malformed."""
    try:
        parsed = parse_registration_credential_json(credential)
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except Exception:  # any malformed field (base64, JSON, CBOR): one client error
        raise ValidationFailed(
            "credential is not a PublicKeyCredential in its JSON form (toJSON())",
            extra={"field": "credential"},
        ) from None
    return parsed, challenge


def verify_registration(
    rp: RelyingParty,
    credential: RegistrationCredential,
    challenge: bytes,
    *,
    user_verification: UserVerification,
) -> NewCredential:
    """WebAuthn 7.1 steps 7-25 (py_webauthn), attestation ``none`` accepted (W5)."""
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
            require_user_verification=user_verification == "required",
            supported_pub_key_algs=list(ALGORITHMS),  # type: ignore[arg-type]
        )
    except WebAuthnException as exc:
        log.info("webauthn_registration_refused", reason=str(exc))
        raise ValidationFailed(
            "the passkey could not be registered: " + _reason(exc),
            extra={"field": "credential"},
        ) from None
    transports = [t.value for t in credential.response.transports or []]
    try:
        aaguid: uuid.UUID | None = uuid.UUID(verified.aaguid)
    except ValueError:
        aaguid = None
    return NewCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=sorted(set(transports)),
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backup_state=verified.credential_backed_up,
        aaguid=aaguid if aaguid and aaguid.int else None,
        user_verified=verified.user_verified,
    )


def _reason(exc: WebAuthnException) -> str:
    text = str(exc)
    if "origin" in text.lower():
        return "it was made for another site (origin)"
    if "rp id" in text.lower():
        return "it was made for another site (RP ID)"
    if "verification" in text.lower():
        return "the authenticator did not verify the user (PIN or biometrics)"
    return "the authenticator's answer did not verify"


def user_verification_of(app: AppRecord) -> UserVerification:
    value = policy_of(app).webauthn_user_verification
    return "required" if value == "required" else "preferred"


async def begin_registration(
    conn: asyncpg.Connection,
    settings: Settings,
    app: AppRecord,
    *,
    user_id: uuid.UUID,
    email: str,
) -> dict[str, Any]:
    """Options for ``navigator.credentials.create()``, with a challenge bound to the user."""
    require_allowed(app)
    rp = relying_party(settings, app)
    uv = user_verification_of(app)
    handle = await repo.user_handle(conn, user_id)
    existing = await repo.credentials_of(conn, user_id)
    challenge = await repo.new_challenge(conn, "register", user_id=user_id, user_verification=uv)
    return creation_options(
        rp,
        handle=handle,
        email=email,
        existing=existing,
        challenge=challenge,
        user_verification=uv,
    )


async def finish_registration(
    conn: asyncpg.Connection,
    settings: Settings,
    app: AppRecord,
    *,
    user_id: uuid.UUID,
    credential: dict[str, Any],
    name: str | None,
    meta: audit.RequestMeta,
) -> Credential:
    """Verify the attestation against the user's outstanding challenge; store the key.

    The challenge is consumed in the caller's transaction: when this raises, the
    caller commits the consumption anyway (see the view), so a failed
    registration cannot be retried with the same challenge."""
    parsed, challenge = parse_registration(credential)
    outstanding = await repo.take_challenge(conn, challenge, "register", user_id=user_id)
    if outstanding is None:
        raise ValidationFailed(
            "this registration has expired or was already used; ask for new options",
            extra={"field": "credential"},
        )
    rp = relying_party(settings, app)
    new = verify_registration(
        rp, parsed, challenge, user_verification=outstanding.user_verification
    )
    label = (name or "").strip()[:MAX_NAME] or default_name(new)
    factor_id = await repo.add(
        conn,
        user_id=user_id,
        name=label,
        credential_id=new.credential_id,
        public_key=new.public_key,
        sign_count=new.sign_count,
        transports=new.transports,
        backup_eligible=new.backup_eligible,
        backup_state=new.backup_state,
        aaguid=new.aaguid,
        user_verified=new.user_verified,
    )
    if factor_id is None:
        raise Conflict("this passkey is already registered")
    await audit.record(
        conn,
        "mfa.enrol",
        "success",
        meta,
        actor_type="user",
        actor_id=str(user_id),
        target_type="mfa_factor",
        target_id=str(factor_id),
        details={"kind": "webauthn", "backup_eligible": new.backup_eligible},
    )
    stored = await repo.by_credential_id(conn, new.credential_id)
    assert stored is not None
    return stored


def default_name(new: NewCredential) -> str:
    return "Synced passkey" if new.backup_eligible else "Security key or device passkey"


# -- authentication (WebAuthn 7.2) -------------------------------------------


def request_options(
    rp: RelyingParty,
    *,
    allow: list[Credential],
    challenge: bytes,
    user_verification: UserVerification,
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON, for ``parseRequestOptionsFromJSON``.
    An empty ``allowCredentials`` asks for a discoverable credential (passwordless)."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(c) for c in allow],
        user_verification=UserVerificationRequirement(user_verification),
    )
    return options_to_json_dict(options)


async def begin_authentication(
    conn: asyncpg.Connection,
    settings: Settings,
    app: AppRecord,
    *,
    flow_id: uuid.UUID,
    user_id: uuid.UUID | None,
) -> dict[str, Any]:
    """Options for ``navigator.credentials.get()``, the challenge bound to the flow.

    ``user_id`` known (a first factor identified the user): allowCredentials are
    that user's passkeys, user verification per policy. Unknown (passwordless):
    no list, user verification required."""
    rp = relying_party(settings, app)
    if user_id is None:
        uv: UserVerification = "required"
        allow: list[Credential] = []
    else:
        uv = user_verification_of(app)
        allow = await repo.credentials_of(conn, user_id)
    challenge = await repo.new_challenge(
        conn, "authenticate", flow_id=flow_id, user_verification=uv
    )
    return request_options(rp, allow=allow, challenge=challenge, user_verification=uv)


@dataclass(frozen=True, slots=True)
class Assertion:
    user_id: uuid.UUID
    factor_id: uuid.UUID
    amr: list[str]
    user_verified: bool


Outcome = Assertion | Literal["refused"]


def parse_assertion(assertion: Any) -> tuple[AuthenticationCredential, bytes] | None:
    """The credential and its clientDataJSON challenge, or None when malformed."""
    if not isinstance(assertion, dict):
        return None
    try:
        parsed = parse_authentication_credential_json(assertion)
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except Exception:  # any malformed field: refused like any other bad assertion
        return None
    return parsed, challenge


async def verify_assertion(
    conn: asyncpg.Connection,
    settings: Settings,
    app: AppRecord,
    *,
    flow_id: uuid.UUID,
    flow_user_id: uuid.UUID | None,
    assertion: Any,
    meta: audit.RequestMeta,
) -> Outcome:
    """Check an assertion for the sign-in flow ``flow_id`` (WebAuthn 7.2).

    Returns the verified :class:`Assertion` or ``"refused"``; never raises for a
    bad assertion, so the caller commits what happened (the consumed challenge,
    the audit row) and then answers :class:`PasskeyRefused`. Order matters: the
    challenge first (single use even when what follows fails), then the
    credential in this app's schema only, then the user (the flow's user when a
    first factor identified one; the user handle must name the credential's
    owner), the signature, user verification, and last the counter."""
    found = parse_assertion(assertion)
    if found is None:
        return await _refused(conn, meta, None, "malformed")
    parsed, challenge = found
    outstanding = await repo.take_challenge(conn, challenge, "authenticate", flow_id=flow_id)
    if outstanding is None:
        return await _refused(conn, meta, None, "challenge")
    credential = await repo.by_credential_id(conn, parsed.raw_id)
    if credential is None:
        # Unknown here, whether or not another app knows it (W1).
        return await _refused(conn, meta, None, "unknown_credential")
    if flow_user_id is not None and credential.user_id != flow_user_id:
        return await _refused(conn, meta, credential, "other_user")
    handle = parsed.response.user_handle
    if handle is not None and await repo.user_of_handle(conn, handle) != credential.user_id:
        return await _refused(conn, meta, credential, "user_handle")
    rp = relying_party(settings, app)
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
            credential_public_key=credential.public_key,
            # The counter is compared in the guarded UPDATE below (race-free);
            # 0 here keeps py_webauthn from deciding it on a stale read.
            credential_current_sign_count=0,
            require_user_verification=outstanding.user_verification == "required",
        )
    except WebAuthnException as exc:
        log.info("webauthn_assertion_refused", reason=str(exc))
        return await _refused(conn, meta, credential, "signature")
    moved = await repo.record_use(
        conn,
        credential.factor_id,
        seen_count=credential.sign_count,
        new_count=verified.new_sign_count,
        backup_state=verified.credential_backed_up,
    )
    if not moved:
        await audit.record(
            conn,
            "mfa.webauthn_counter_regression",
            "denied",
            meta,
            actor_type="user",
            actor_id=str(credential.user_id),
            target_type="mfa_factor",
            target_id=str(credential.factor_id),
            details={"stored": credential.sign_count, "presented": verified.new_sign_count},
        )  # a security event: also on the log stream (oneauth.audit)
        return "refused"
    return Assertion(
        user_id=credential.user_id,
        factor_id=credential.factor_id,
        amr=amr_of(credential, user_verified=verified.user_verified),
        user_verified=verified.user_verified,
    )


async def _refused(
    conn: asyncpg.Connection,
    meta: audit.RequestMeta,
    credential: Credential | None,
    reason: str,
) -> Literal["refused"]:
    await audit.record(
        conn,
        "auth.login",
        "failure",
        meta,
        actor_type="user" if credential else None,
        actor_id=str(credential.user_id) if credential else None,
        target_type="mfa_factor" if credential else None,
        target_id=str(credential.factor_id) if credential else None,
        details={"method": NAME, "reason": reason},
    )
    return "refused"


def options_json(options: dict[str, Any]) -> str:
    """For a hosted page: the options as JSON for a data attribute."""
    return json.dumps(options, separators=(",", ":"))


# -- the strategy and the options of a sign-in flow ----------------------------


def require_allowed(app: AppRecord) -> None:
    """Passkeys are one of the app's ``mfa_factors`` (default: they are)."""
    if NAME not in policy_of(app).mfa_factors:
        raise FeatureDisabled("passkeys are not enabled for this app")


async def authentication_options(
    services: Services, app: AppRecord, flow_token: str | None, meta: audit.RequestMeta
) -> tuple[dict[str, Any], str | None, int | None]:
    """``POST /v1/mfa/webauthn/authentication/options``: options bound to the flow.

    With a flow token (a first factor identified the user): that flow, the user's
    passkeys as allowCredentials. Without (discoverable, passwordless): a new
    login flow is begun; its token comes back with the options and goes with the
    assertion to ``/v1/login/mfa``. Returns (options, new flow token, its ttl)."""
    from oneauth.flows import login  # it imports the strategies: not at module level

    require_allowed(app)
    async with services.router.enter(app) as conn:
        binding = await login.api_binding(services, app, conn)
        new_token: str | None = None
        if flow_token is None:
            names = throttle.Names(services.settings.master_key, app.app_id)
            await repo.before_anonymous_flow(conn, names, meta.ip_hash)
            flow, new_token = await engine.begin(
                conn,
                app,
                kind="login",
                binding=binding,
                serves={"client_id": binding.removeprefix("api:")},
            )
        else:
            flow = await engine.load(conn, flow_token, binding=binding, kinds=login.LOGIN)
        options = await begin_authentication(
            conn, services.settings, app, flow_id=flow.id, user_id=flow.user_id
        )
    return options, new_token, engine.FLOW_TTL if new_token else None


@dataclass(frozen=True, slots=True)
class WebAuthnStrategy:
    """A passkey: a second factor after a password or code, or alone (passwordless,
    discoverable credential, user verification required): possession of the key
    plus the PIN or biometric that unlocked it, so ``mfa`` is in its own amr when
    the authenticator verified the user (RFC 8176: hwk/swk + user)."""

    name: str = NAME
    amr: tuple[str, ...] = ("hwk",)
    kind: StrategyKind = "both"

    async def verify(
        self,
        services: Services,
        app: AppRecord,
        flow: Flow,
        payload: Payload,
        meta: audit.RequestMeta,
        then: Then[T],
    ) -> T:
        """``payload["assertion"]``: ``PublicKeyCredential.toJSON()`` of ``get()``."""
        require_allowed(app)
        if not flow.stored:
            # A challenge is bound to a stored flow: ask for options first.
            raise PasskeyRefused("ask for authentication options first")
        refused = False
        async with services.router.enter(app) as conn:
            outcome = await verify_assertion(
                conn,
                services.settings,
                app,
                flow_id=flow.id,
                flow_user_id=flow.user_id,
                assertion=payload.get("assertion"),
                meta=meta,
            )
            user = None
            if isinstance(outcome, Assertion):
                user = await users_repo.by_id(conn, outcome.user_id)
            if not isinstance(outcome, Assertion) or user is None or user.status != "active":
                refused = True  # the consumed challenge and the audit row commit
            else:
                amr = [*outcome.amr, "mfa"] if outcome.user_verified else list(outcome.amr)
                result = await then(conn, user, amr)
        if refused:
            metrics.LOGIN_FAILURE.inc()
            raise PasskeyRefused()
        return result


STRATEGY = WebAuthnStrategy()
