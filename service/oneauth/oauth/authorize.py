"""The authorization code flow: the authorization request, codes, and their exchange.

* RFC 6749 section 4.1 (https://www.rfc-editor.org/rfc/rfc6749#section-4.1): the
  request, the response, and the ``authorization_code`` grant;
* RFC 7636 (PKCE): S256 required of every client (:mod:`oneauth.oauth.pkce`);
* RFC 9207: ``iss`` in every authorization response, errors included;
* OpenID Connect Core 1.0 section 3.1.2: ``nonce``, ``prompt``, ``max_age``,
  ``acr_values`` (a step-up to the MFA class, issue 12);
* Initiating User Registration via OpenID Connect 1.0: ``prompt=create``;
* organizations (issue 13): ``organization_id=<org id>``, the scope forms
  ``organization:<slug>`` (as Keycloak) and bare ``organization`` (the user picks);
* RFC 9700 (OAuth 2.0 Security BCP): exact redirect URIs, single-use codes whose
  reuse revokes what the first use produced, no ``response_type=token``.

Views live in :mod:`oneauth.web.pages`; this module holds no HTTP.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlencode

import asyncpg

from oneauth import audit
from oneauth.api.models import TokenSet
from oneauth.apps.models import AppRecord
from oneauth.errors import OrgUnavailable
from oneauth.flows.common import start_session
from oneauth.identity import users as users_repo
from oneauth.oauth import organizations, pkce, redirect_uri
from oneauth.oauth.clients import Client
from oneauth.oauth.errors import InvalidGrant, InvalidRequest, OAuthError, UnauthorizedClient
from oneauth.oauth.models import AuthorizeQuery, TokenForm
from oneauth.secretbox import SecretBox, SecretBoxError
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.tokens.issue import ACR_MFA, ACR_SFA
from oneauth.web.browser_session import BrowserSession

GRANT = "authorization_code"
CODE_PREFIX = "oac_"
# RFC 6749 section 4.1.2: "A maximum authorization code lifetime of 10 minutes is
# RECOMMENDED." A relying party redeems the code within a second of the redirect;
# two minutes leaves room for slow networks and still bounds a leaked code.
CODE_TTL = 120
# How long a user may take on the login and consent pages.
FLOW_TTL = 30 * 60
MAX_STATE = 2048
MAX_NONCE = 512
MAX_AGE_LIMIT = 10 * 365 * 86400
# Issue 13: the scope of org-scoped tokens (``organization:<slug>`` names one org).
ORG_SCOPE = "organization"
PROMPTS = ("none", "login", "consent", "select_account", "create")  # prompt_values_supported
MAX_ACR_VALUES = 10
_PROVIDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class PageError(Exception):
    """Not answerable at the client's redirect URI (unknown client, unregistered or
    missing redirect URI): shown on our own error page, never redirected (RFC 6749
    section 4.1.2.1, O1), so the endpoint can never become an open redirector."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AuthorizeError(Exception):
    """An error response sent to the (validated) redirect URI (RFC 6749 section 4.1.2.1)."""

    def __init__(
        self, error: str, description: str, *, redirect_uri: str, state: str | None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request, carried between the authorize endpoint,
    the login page and the consent page sealed (AES-GCM, bound to the app), so the
    pages need no server-side state and nothing in it can be altered."""

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: tuple[str, ...]
    # A sign-in older than this (epoch seconds) does not satisfy the request
    # (max_age). prompt=login (and max_age=0) asks for a new sign-in whatever the
    # clocks say; both are cleared once that sign-in happened (``signed_in``).
    fresh_after: int | None
    login_hint: str | None
    expires: int
    # acr_values as sent (OIDC Core 3.1.2.1), in order of preference; kept last with a
    # default so that requests sealed before it still open.
    acr_values: tuple[str, ...] = ()
    # A sign-in for the app's own account page (web/account.py), not for a client: it
    # ends at the page, with no code and no consent. Only we seal requests, so only
    # we can make one.
    account: bool = False
    # Issue 13: the organization the tokens are for. ``org_id`` (organization_id,
    # or the user's pick) or ``org_slug`` (organization:<slug>) names it; ``org_pick``:
    # the client asked for one (bare ``organization``) and the user chooses. Checked
    # against the signed-in user's memberships whenever the request goes on.
    org_id: str | None = None
    org_slug: str | None = None
    org_pick: bool = False
    # idp_hint (issue 14): the app's upstream identity provider to go straight to.
    idp_hint: str | None = None

    @property
    def scope_text(self) -> str:
        return " ".join(self.scope)

    @property
    def wants_org(self) -> bool:
        """True when the tokens are to be for an organization."""
        return bool(self.org_id or self.org_slug or self.org_pick)

    def for_org(self, org_id: str) -> AuthorizationRequest:
        """The request for the org ``org_id`` (named by the client, or picked)."""
        return replace(self, org_id=org_id, org_slug=None, org_pick=False)

    @property
    def needs_mfa(self) -> bool:
        """True when the client asked for the MFA class only (``acr_values`` without
        ``urn:oneauth:acr:sfa``): a sign-in with one factor does not satisfy it."""
        return ACR_MFA in self.acr_values and ACR_SFA not in self.acr_values

    def signed_in(self) -> AuthorizationRequest:
        """The request after the user signed in (or registered) for it: that satisfies it."""
        kept = tuple(p for p in self.prompt if p not in ("login", "create"))
        # idp_hint is spent too: a request that needs a sign-in again shows the page.
        return replace(self, fresh_after=None, prompt=kept, idp_hint=None)

    def sign_in_instead(self) -> AuthorizationRequest:
        """The request without ``prompt=create``: the registration page's "Sign in" link."""
        return replace(self, prompt=tuple(p for p in self.prompt if p != "create"))

    def needs_login(self, auth_time: float | None) -> bool:
        """True unless a sign-in at ``auth_time`` (None: none) satisfies the request.

        ``prompt=create`` asks for the registration page even in a signed-in browser
        (someone else at a shared computer wants an account of their own)."""
        if auth_time is None or "login" in self.prompt or "create" in self.prompt:
            return True
        return self.fresh_after is not None and auth_time < self.fresh_after

    def needs_step_up(self, amr: Iterable[str]) -> bool:
        """True when a live sign-in with ``amr`` falls short of ``acr_values``."""
        return self.needs_mfa and "mfa" not in amr

    def seal(self, box: SecretBox, app_id: str) -> str:
        data = json.dumps(asdict(self), separators=(",", ":")).encode()
        return box.seal(data, context=_flow_context(app_id))

    @classmethod
    def unseal(cls, box: SecretBox, app_id: str, sealed: str | None) -> AuthorizationRequest | None:
        """The request, or None if it is not this app's, was altered, or expired."""
        if not sealed or len(sealed) > 16_384:
            return None
        try:
            data = json.loads(box.open(sealed, context=_flow_context(app_id)))
            found = cls(
                **{
                    **data,
                    "scope": tuple(data["scope"]),
                    "prompt": tuple(data["prompt"]),
                    "acr_values": tuple(data.get("acr_values", ())),
                }
            )
        except (SecretBoxError, ValueError, TypeError, KeyError):
            return None
        return found if found.expires > time.time() else None


def _flow_context(app_id: str) -> str:
    return f"app:{app_id}/authorization-request"


def single_values(items: Iterable[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """Parameters, and the names sent more than once (RFC 6749 section 3.1 forbids it)."""
    values: dict[str, str] = {}
    repeated: set[str] = set()
    for key, value in items:
        if key in values:
            repeated.add(key)
        values[key] = value
    return values, repeated


def _usable(client: Client | None) -> bool:
    return client is not None and not client.disabled


_UNREGISTERED = (
    "The redirect URI is not registered for this application, so we cannot send you"
    " back to it. Contact the application's developers."
)


def _check_redirect(client: Client, uri: str) -> None:
    if not redirect_uri.matches(client.redirect_uris, uri, native=not client.is_confidential):
        raise PageError("invalid_redirect_uri", _UNREGISTERED)


async def parse_request(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    params: AuthorizeQuery,
    refused: Collection[str] = (),
    repeated: Collection[str] = (),
) -> tuple[Client, AuthorizationRequest]:
    """Validate an authorization request; PageError or AuthorizeError on failure.

    ``params`` is the query (or form) decoded through its model, without the values
    the model refused (``refused``: too long); ``repeated`` names the parameters sent
    more than once. Either is an error page while the client or its redirect URI
    is in doubt, and an error redirect once both are known good.
    """
    client_id = params.client_id
    if not client_id or "client_id" in repeated:
        if "client_id" in refused:  # longer than any client id: not one of ours
            raise PageError("invalid_client", "The application that sent you here is not known.")
        raise PageError("invalid_client", "The request does not name one application.")
    client = await services.clients.get(conn, app.app_id, client_id)
    if client is None or not _usable(client):
        raise PageError("invalid_client", "The application that sent you here is not known.")
    uri = params.redirect_uri
    if "redirect_uri" in refused:  # longer than any registered one
        raise PageError("invalid_redirect_uri", _UNREGISTERED)
    if not uri or "redirect_uri" in repeated:
        # OIDC Core 3.1.2.1 makes redirect_uri REQUIRED; without it there is no
        # exact string to compare, so no redirect may happen.
        raise PageError("invalid_redirect_uri", "The request does not name a redirect URI.")
    _check_redirect(client, uri)

    state = params.state  # None if too long (refused): never echoed then

    def fail(error: str, description: str) -> AuthorizeError:
        return AuthorizeError(error, description, redirect_uri=uri, state=state)

    if "state" in refused:
        raise fail("invalid_request", f"state is longer than {MAX_STATE} characters")
    if repeated:
        raise fail("invalid_request", f"parameter sent twice: {', '.join(sorted(repeated))}")
    # OIDC Core 6: request objects are not supported (request_parameter_supported=false).
    if params.request is not None or "request" in refused:
        raise fail("request_not_supported", "the request parameter is not supported")
    if params.request_uri is not None or "request_uri" in refused:
        raise fail("request_uri_not_supported", "the request_uri parameter is not supported")
    if params.registration is not None or "registration" in refused:
        raise fail("registration_not_supported", "the registration parameter is not supported")
    if refused:  # beyond its model's bound: the value would be refused below anyway
        raise fail("invalid_request", f"parameter too long: {', '.join(sorted(refused))}")
    # O2, O6: only the code flow; response_type=token (implicit) or hybrids never.
    if params.response_type != "code":
        raise fail("unsupported_response_type", "response_type must be code")
    if params.response_mode is not None and params.response_mode != "query":
        raise fail("invalid_request", "response_mode must be query")
    if GRANT not in client.grant_types:
        raise fail("unauthorized_client", "this client may not use the authorization code flow")
    # RFC 7636 section 4.4.1 / RFC 9700 section 2.1.1: PKCE for every client, S256 only.
    challenge = params.code_challenge
    if not challenge:
        raise fail("invalid_request", "code_challenge is required (PKCE with S256)")
    # Section 4.3: an absent method means "plain", which is refused like an explicit one.
    if params.code_challenge_method != pkce.METHOD:
        raise fail("invalid_request", "code_challenge_method must be S256")
    if not pkce.valid_challenge(challenge):
        raise fail("invalid_request", "code_challenge must be 43 base64url characters")
    if params.code_verifier is not None:
        raise fail("invalid_request", "code_verifier belongs in the token request")
    scope, org_slug, org_pick = _scope(params.scope, params.organization_id, client, fail)
    org_id = params.organization_id
    if org_id is not None and not organizations.ORG_ID.fullmatch(org_id):
        raise fail("invalid_request", "organization_id is not an organization id (org_...)")
    if org_id is not None and org_slug is not None:
        raise fail(
            "invalid_request",
            "organization_id and the organization:<slug> scope both name an organization;"
            " send one of them",
        )
    prompt = tuple(sorted(set((params.prompt or "").split())))
    if set(prompt) - set(PROMPTS):
        raise fail("invalid_request", f"prompt must be one or more of {', '.join(PROMPTS)}")
    if "none" in prompt and len(prompt) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined with other values")
    nonce = params.nonce
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE:
        raise fail("invalid_request", f"nonce must be 1 to {MAX_NONCE} characters")
    now = int(time.time())
    fresh_after = None
    max_age = params.max_age
    if max_age is not None:
        if not max_age.isdigit() or int(max_age) > MAX_AGE_LIMIT:
            raise fail("invalid_request", "max_age must be a non-negative number of seconds")
        if int(max_age) == 0:  # OIDC Core 3.1.2.1: equivalent to prompt=login
            prompt = tuple(sorted({*prompt, "login"}))
        else:
            fresh_after = now - int(max_age)
    # OIDC Core 3.1.2.1: space-separated, in order of preference. Values we do not
    # know are kept (a voluntary claim) and satisfied by what the sign-in achieves.
    acr_values = tuple(dict.fromkeys((params.acr_values or "").split()))
    if len(acr_values) > MAX_ACR_VALUES or any(len(v) > 200 for v in acr_values):
        raise fail(
            "invalid_request", f"acr_values: at most {MAX_ACR_VALUES} values of 200 characters"
        )
    hint = params.login_hint
    idp_hint = params.idp_hint
    request = AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=uri,
        scope=scope,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        prompt=prompt,
        fresh_after=fresh_after,
        login_hint=hint if hint and len(hint) <= 320 and "@" in hint else None,
        expires=now + FLOW_TTL,
        acr_values=acr_values,
        org_id=org_id,
        org_slug=org_slug,
        org_pick=org_pick and org_id is None and org_slug is None,
        # A provider id is letters, digits, "_" and "-"; anything else names none.
        idp_hint=idp_hint if idp_hint and _PROVIDER_ID.fullmatch(idp_hint) else None,
    )
    return client, request


def account_request(
    client: Client,
    issuer: str,
    *,
    fresh: bool = False,
    hint: str | None = None,
    mfa: bool = False,
) -> AuthorizationRequest:
    """A sign-in for the account page at ``{issuer}/account`` (``fresh``: a new one, for
    changes that need a recent sign-in; ``mfa``: with the second factor), with the app's
    first-party ``client``."""
    now = int(time.time())
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=f"{issuer}/account",
        scope=("openid",),
        state=None,
        nonce=None,
        # Never checked (no code is issued); present because every request has one.
        code_challenge=secrets.token_urlsafe(32),
        prompt=("login",) if fresh else (),
        fresh_after=None,
        login_hint=hint,
        expires=now + FLOW_TTL,
        acr_values=(ACR_MFA,) if mfa else (),
        account=True,
    )


def _scope(
    raw: str | None,
    organization_id: str | None,
    client: Client,
    fail: Callable[[str, str], AuthorizeError],
) -> tuple[tuple[str, ...], str | None, bool]:
    """The scope (RFC 6749 section 3.3), with the organization named by the scope
    form ``organization:<slug>`` (or None) and whether bare ``organization`` was asked.

    Every form of asking for an org (``organization_id`` too) is kept in the scope as
    the one value ``organization``, so the consent, the codes and the tokens say "for
    an organization" whichever org it is (a refresh may switch it); the slug travels
    beside it. Scopes are limited to the client's registration (O5): a client asks
    for org-scoped tokens only if it was registered with the ``organization`` scope.
    """
    wanted = (raw or "").split()
    if not wanted:
        raise fail("invalid_scope", "scope is required")
    slugs = {s.removeprefix(ORG_SCOPE + ":") for s in wanted if s.startswith(ORG_SCOPE + ":")}
    pick = ORG_SCOPE in wanted
    if len(slugs) > 1:
        raise fail("invalid_scope", "the scope names more than one organization; name one")
    slug = next(iter(slugs), None)
    if slug is not None and not organizations.SLUG.fullmatch(slug):
        raise fail("invalid_scope", "organization:<slug>: the slug is not a valid slug")
    plain = [s for s in wanted if s != ORG_SCOPE and not s.startswith(ORG_SCOPE + ":")]
    if slug is not None or pick or organization_id is not None:
        plain.append(ORG_SCOPE)
    beyond = set(plain) - client.scopes
    if beyond:
        hint = ""
        if ORG_SCOPE in beyond:
            hint = " (register the client with the organization scope to ask for organizations)"
        raise fail("invalid_scope", f"scope beyond this client's: {' '.join(sorted(beyond))}{hint}")
    return tuple(dict.fromkeys(plain)), slug, pick


async def revalidate(
    services: Services, app: AppRecord, conn: asyncpg.Connection, request: AuthorizationRequest
) -> Client:
    """The client of a sealed request, checked again: it may have changed since."""
    client = await services.clients.get(conn, app.app_id, request.client_id)
    if client is None or not _usable(client):
        raise PageError("invalid_client", "The application that sent you here is not known.")
    if request.account:
        return client  # the app's own first-party client; nothing is redirected to it
    _check_redirect(client, request.redirect_uri)
    if GRANT not in client.grant_types or not set(request.scope) <= client.scopes:
        raise AuthorizeError(
            "unauthorized_client",
            "the client's registration changed during sign-in",
            redirect_uri=request.redirect_uri,
            state=request.state,
        )
    return client


def response_uri(uri: str, params: Mapping[str, str | None]) -> str:
    """Add response parameters to the redirect URI, keeping its own query (section 3.1.2)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def success_uri(request: AuthorizationRequest, code: str, issuer: str) -> str:
    return response_uri(request.redirect_uri, {"code": code, "state": request.state, "iss": issuer})


def error_uri(uri: str, error: str, description: str | None, state: str | None, issuer: str) -> str:
    # RFC 9207 section 2: iss in error responses too.
    return response_uri(
        uri, {"error": error, "error_description": description, "state": state, "iss": issuer}
    )


# --- codes (SQL) --------------------------------------------------------------------


def _hash(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()


async def issue_code(
    conn: asyncpg.Connection, request: AuthorizationRequest, session: BrowserSession
) -> str:
    """A single-use code for ``request``, bound to the signed-in browser session, and
    to the org of ``request.org_id`` (checked for this user by the caller, and again
    at the exchange)."""
    if request.wants_org and request.org_id is None:
        raise ValueError("an org-scoped request gets a code only once its org is chosen")
    raw = CODE_PREFIX + secrets.token_urlsafe(32)
    # One round trip: store the code and count it as use of the browser session
    # (its idle clock restarts).
    await conn.execute(
        "WITH code AS (INSERT INTO authorization_codes (code_hash, client_id, user_id,"
        " browser_session_id, redirect_uri, code_challenge, scope, nonce, auth_time, amr,"
        " expires_at, org_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
        " now() + make_interval(secs => $11), $12))"
        " UPDATE browser_sessions SET last_seen_at = now() WHERE id = $4",
        _hash(raw),
        request.client_id,
        session.user_id,
        session.id,
        request.redirect_uri,
        request.code_challenge,
        request.scope_text,
        request.nonce,
        session.auth_time,
        session.amr,
        CODE_TTL,
        request.org_id,
    )
    if random.random() < 1 / 64:
        # Used and expired codes are kept a day, long enough to recognise a reuse.
        await conn.execute(
            "DELETE FROM authorization_codes WHERE expires_at < now() - interval '1 day'"
        )
    return raw


# One statement: consume the code if it is this client's and unused. Of two
# concurrent exchanges the second waits on the row lock, then finds used_at set.
_CONSUME = """
UPDATE authorization_codes c SET used_at = now()
WHERE code_hash = $1 AND client_id = $2 AND used_at IS NULL
RETURNING user_id, browser_session_id, redirect_uri, code_challenge, scope, nonce, auth_time,
          amr, org_id, expires_at > now() AS live,
          EXISTS (SELECT 1 FROM browser_sessions b WHERE b.id = c.browser_session_id
                  AND b.revoked_at IS NULL AND b.expires_at > now()) AS signed_in
"""


async def authorization_code_grant(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    client: Client,
    form: TokenForm,
    meta: audit.RequestMeta,
) -> TokenSet | OAuthError:
    """RFC 6749 section 4.1.3 with RFC 7636 section 4.6.

    Once the code is consumed, errors are returned rather than raised so that the
    consumption, any revocation and the audit row commit before the 400.
    """
    if GRANT not in client.grant_types:
        raise UnauthorizedClient("this client may not use the authorization_code grant")
    raw = form.code
    if not raw:
        raise InvalidRequest("code is required")
    if not form.redirect_uri:
        raise InvalidRequest("redirect_uri is required")
    digest = _hash(raw)
    row = await conn.fetchrow(_CONSUME, digest, client.client_id)

    async def failed(reason: str) -> InvalidGrant:
        await audit.record(
            conn,
            "token.issue",
            "failure",
            meta,
            actor_type="client",
            actor_id=client.client_id,
            details={"grant": GRANT, "reason": reason},
        )
        return InvalidGrant("the authorization code is invalid, expired or already used")

    async def org_gone() -> InvalidGrant:
        await audit.record(
            conn,
            "token.issue",
            "failure",
            meta,
            actor_type="client",
            actor_id=client.client_id,
            details={"grant": GRANT, "reason": "org_unavailable", "org_id": row["org_id"]},
        )
        return InvalidGrant(
            "the organization of this authorization code is no longer available to the user"
        )

    if row is None:
        used = await conn.fetchrow(
            "SELECT session_id FROM authorization_codes"
            " WHERE code_hash = $1 AND client_id = $2 AND used_at IS NOT NULL",
            digest,
            client.client_id,
        )
        if used is None:
            return await failed("unknown_code")
        # O3 (ASVS 10.4.2): a second use means the code leaked; end what the first made.
        if used["session_id"] is not None:
            await sessions.revoke_session(conn, used["session_id"], reason="code_reuse")
        await audit.record(
            conn,
            "token.code_reuse",
            "denied",
            meta,
            actor_type="client",
            actor_id=client.client_id,
            target_type="session",
            target_id=str(used["session_id"]) if used["session_id"] else None,
            details={"action": "session_revoked" if used["session_id"] else "none"},
        )
        return InvalidGrant("the authorization code is invalid, expired or already used")
    if not row["live"]:
        return await failed("expired")
    # Section 4.1.3: the same redirect_uri as in the authorization request, exactly.
    if form.redirect_uri != row["redirect_uri"]:
        return await failed("redirect_uri_mismatch")
    if not pkce.verify(form.code_verifier, row["code_challenge"]):
        return await failed("pkce_verifier_mismatch")
    user = await users_repo.by_id(conn, row["user_id"])
    if user is None or user.status != "active" or not row["signed_in"]:
        return await failed("session_ended")
    org_id: str | None = row["org_id"]
    org = None
    if org_id is not None:
        # Checked again here: the user may have left the org, or the org been
        # suspended, since the code was issued (suspension refuses new org-scoped
        # tokens at once). An org deleted since took the code with it (cascade).
        org = await organizations.member_org(conn, user.id, org_id=org_id)
        if org is None or not org.active:
            return await org_gone()

    issuer = await services.issuer(app, conn)
    scope: str = row["scope"]
    try:
        # The session (refresh family) is for the code's org; the access token
        # carries its claims (org_id, org_slug, org_roles, org_permissions).
        tokens, session = await start_session(
            conn,
            issuer,
            user=user,
            client=client,
            amr=list(row["amr"]),
            scope=scope,
            meta=meta,
            auth_time=row["auth_time"],
            org_id=org_id,
        )
    except OrgUnavailable:  # raised before it wrote anything; the code stays spent
        return await org_gone()
    # Remember what this code produced (a reuse revokes it) and tie the new session
    # to the browser session it came from (logout there ends it): one round trip.
    await conn.execute(
        "WITH code AS (UPDATE authorization_codes SET session_id = $2 WHERE code_hash = $1)"
        " UPDATE sessions SET browser_session_id = $3 WHERE id = $2",
        digest,
        session.id,
        row["browser_session_id"],
    )
    scopes = set(scope.split())
    if "openid" in scopes:
        extra: dict[str, Any] = {}
        if "email" in scopes:
            extra.update(email=user.email, email_verified=user.email_verified)
        if "profile" in scopes:
            extra["updated_at"] = int(user.updated_at.timestamp())
        if org is not None:
            # As Auth0 does: the relying party learns the org from the ID token too.
            extra.update(org_id=org.id, org_slug=org.slug)
        tokens["id_token"] = issuer.id_token(
            sub=user.sub,
            client_id=client.client_id,
            auth_time=int(row["auth_time"].timestamp()),
            access_token=tokens["access_token"],
            nonce=row["nonce"],
            sid=str(session.id),
            amr=list(row["amr"]),
            extra=extra,
        )
    await audit.record(
        conn,
        "token.issue",
        "success",
        meta,
        actor_type="user",
        actor_id=user.sub,
        target_type="session",
        target_id=str(session.id),
        details={
            "grant": GRANT,
            "client_id": client.client_id,
            **({"org_id": org_id} if org_id else {}),
        },
    )
    return TokenSet(**tokens)
