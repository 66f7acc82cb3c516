"""An app's upstream identity providers: records, presets, sealed secrets (issue 14).

Each app has its own providers (``identity_providers`` in its schema) with its
own client credentials at the upstream, its own scopes, redirect URI and
policy: nothing is shared between apps, so the same Google project can be
configured for apps A and B with different credentials and yields two
unrelated users (B5).

* ``id``: ``idp_`` + 128 random bits; it names the provider in the callback URL
  registered upstream, :func:`callback_url`: ``{issuer}/federation/{id}/callback``.
* The client secret (or the signing key of ``private_key_jwt`` / Apple's
  client secret) is sealed by the secret box with the app and the provider in
  the associated data (SECURITY.md A2): it never leaves this module in
  plaintext except through :func:`open_secret`, and never appears in
  :meth:`Provider.public` (what the CLI prints and the audit log records).
* Presets (:data:`PRESETS`) fill in issuer, scopes and policy defaults for
  ``google``, ``microsoft``, ``apple`` and ``github``; ``oidc`` is any OpenID
  Provider found through discovery at ``--issuer``.

Two doors to the same table: the CLI's psycopg connection (``create``,
``list_all``, ``get``, ``update``, ``delete``; each audited with
``audit.record_sync``) and the service's asyncpg connection (``load``,
``enabled``), both in the app's context.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
import psycopg
from psycopg.types.json import Jsonb

from oneauth import audit
from oneauth.secretbox import SecretBox

__all__ = [
    "AUTH_METHODS",
    "KINDS",
    "PRESETS",
    "Preset",
    "Provider",
    "ProviderError",
    "ProviderSpec",
    "callback_url",
    "create",
    "delete",
    "enabled",
    "get",
    "list_all",
    "load",
    "new_provider_id",
    "open_secret",
    "seal_context",
    "update",
]

Kind = Literal["oidc", "google", "microsoft", "apple", "github"]
KINDS: tuple[Kind, ...] = ("oidc", "google", "microsoft", "apple", "github")
AUTH_METHODS = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "apple_client_secret",
)
ID_PREFIX = "idp_"
ID_RE = re.compile(r"idp_[A-Za-z0-9_-]{16,43}")
MAX_SECRET = 8192  # a PEM private key fits; anything larger is not a client secret
SyncConn = psycopg.Connection[tuple[Any, ...]]

COLUMNS = (
    "id, kind, name, button_label, issuer, client_id, client_secret_sealed, auth_method,"
    " auth_params::text AS auth_params, scopes, claim_mapping::text AS claim_mapping, enabled,"
    " jit_signup, linking, trust_email_verified, trust_amr, keep_tokens, created_at, updated_at"
)


class ProviderError(ValueError):
    """A provider configuration that is not acceptable; the message says why."""


@dataclass(frozen=True, slots=True)
class Preset:
    issuer: str | None  # None: the operator must give one (--issuer)
    scopes: tuple[str, ...]
    auth_method: str = "client_secret_basic"
    oidc: bool = True  # False: plain OAuth 2.0 with a user API (github)
    trust_email_verified: bool = True


PRESETS: dict[Kind, Preset] = {
    "oidc": Preset(None, ("openid", "email", "profile")),
    "google": Preset("https://accounts.google.com", ("openid", "email", "profile")),
    # Multi-tenant by default: the ID token's iss names the user's tenant
    # (https://login.microsoftonline.com/{tid}/v2.0); it is checked against the
    # discovery document's template with the token's own tid. Microsoft's email
    # claim is not verified by Microsoft (nOAuth): never trusted by default, and
    # the identity is keyed by tid+oid.
    "microsoft": Preset(
        "https://login.microsoftonline.com/common/v2.0",
        ("openid", "email", "profile"),
        trust_email_verified=False,
    ),
    # Apple: the client secret is a JWT signed with the team's key (team_id,
    # key_id in auth_params); the callback arrives as a form POST.
    "apple": Preset(
        "https://appleid.apple.com", ("openid", "email", "name"), "apple_client_secret"
    ),
    # GitHub is OAuth 2.0, not OpenID Connect: the user comes from /user and the
    # verified primary address from /user/emails. For GitHub Enterprise Server
    # (or a stand-in) --issuer is the web base URL and the API is {issuer}/api/v3.
    "github": Preset(
        "https://github.com", ("read:user", "user:email"), "client_secret_post", oidc=False
    ),
}


def new_provider_id() -> str:
    return ID_PREFIX + secrets.token_urlsafe(16)


def seal_context(app_id: str, provider_id: str) -> str:
    """Associated data of a provider's sealed secret: the app and the provider (A2)."""
    return f"app:{app_id}/idp-secret/{provider_id}"


def callback_url(app_issuer: str, provider_id: str) -> str:
    """The exact redirect URI to register at the upstream (``app_issuer``:
    ``settings.issuer_for(app_id)``)."""
    return f"{app_issuer}/federation/{provider_id}/callback"


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    kind: Kind
    name: str
    button_label: str | None
    issuer: str
    client_id: str
    client_secret_sealed: str = field(repr=False)
    auth_method: str
    auth_params: Mapping[str, Any]
    scopes: tuple[str, ...]
    claim_mapping: Mapping[str, str]
    enabled: bool
    jit_signup: bool
    linking: Literal["confirm", "never"]
    trust_email_verified: bool
    trust_amr: bool
    keep_tokens: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def oidc(self) -> bool:
        """OpenID Connect (discovery, ID token) or plain OAuth 2.0 with a user API."""
        return PRESETS[self.kind].oidc

    @property
    def label(self) -> str:
        return self.button_label or f"Continue with {self.name}"

    def public(self, app_issuer: str | None = None) -> dict[str, Any]:
        """Everything but the secret (what the CLI prints, the audit log keeps)."""
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "button_label": self.label,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "auth_method": self.auth_method,
            "auth_params": dict(self.auth_params),
            "scopes": list(self.scopes),
            "claim_mapping": dict(self.claim_mapping),
            "enabled": self.enabled,
            "jit_signup": self.jit_signup,
            "linking": self.linking,
            "trust_email_verified": self.trust_email_verified,
            "trust_amr": self.trust_amr,
            "keep_tokens": self.keep_tokens,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }
        if app_issuer is not None:
            body["callback_url"] = callback_url(app_issuer, self.id)
        return body


def _from_row(row: Mapping[str, Any] | Sequence[Any]) -> Provider:
    if not isinstance(row, Mapping):
        names = [c.strip().split(" AS ")[-1].split("::")[0] for c in COLUMNS.split(",")]
        row = dict(zip(names, row, strict=True))
    return Provider(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        button_label=row["button_label"],
        issuer=row["issuer"],
        client_id=row["client_id"],
        client_secret_sealed=row["client_secret_sealed"],
        auth_method=row["auth_method"],
        auth_params=json.loads(row["auth_params"]),
        scopes=tuple(row["scopes"]),
        claim_mapping=json.loads(row["claim_mapping"]),
        enabled=row["enabled"],
        jit_signup=row["jit_signup"],
        linking=row["linking"],
        trust_email_verified=row["trust_email_verified"],
        trust_amr=row["trust_amr"],
        keep_tokens=row["keep_tokens"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def open_secret(box: SecretBox, app_id: str, provider: Provider) -> str:
    """The provider's client secret (or signing key) in plaintext, for one upstream call."""
    context = seal_context(app_id, provider.id)
    return box.open(provider.client_secret_sealed, context=context).decode()


# --- validation ------------------------------------------------------------------


def _issuer(value: str, *, allow_http: bool) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and (allow_http or loopback)):
        raise ProviderError("the issuer must be an https URL")
    if not parts.hostname or parts.query or parts.fragment or parts.username:
        raise ProviderError("the issuer must be a URL without query, fragment or user info")
    if len(value) > 500:
        raise ProviderError("the issuer is too long")
    return value


def _scopes(values: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(s.strip() for s in values if s.strip()))
    for scope in out:
        if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]{1,200}", scope):
            raise ProviderError(f"invalid scope {scope!r} (RFC 6749 section 3.3)")
    return out


def check_secret(secret: str) -> str:
    secret = secret.strip()
    if not secret:
        raise ProviderError("the client secret is empty")
    if len(secret) > MAX_SECRET or "\x00" in secret:
        raise ProviderError("the client secret is not acceptable")
    return secret


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What the operator gives; :meth:`resolved` applies the kind's preset."""

    kind: Kind
    name: str
    client_id: str
    issuer: str | None = None
    scopes: tuple[str, ...] | None = None
    button_label: str | None = None
    auth_method: str | None = None
    auth_params: Mapping[str, Any] = field(default_factory=dict)
    claim_mapping: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    jit_signup: bool = True
    linking: Literal["confirm", "never"] = "confirm"
    trust_email_verified: bool | None = None
    trust_amr: bool = False
    keep_tokens: bool = False

    def resolved(self, *, allow_http: bool = False) -> ProviderSpec:
        if self.kind not in PRESETS:
            raise ProviderError(f"kind must be one of {', '.join(KINDS)}")
        preset = PRESETS[self.kind]
        issuer = self.issuer or preset.issuer
        if issuer is None:
            raise ProviderError(f"a provider of kind {self.kind} needs --issuer")
        name = self.name.strip()
        if not 1 <= len(name) <= 100:
            raise ProviderError("the name must be 1..100 characters")
        if not 1 <= len(self.client_id) <= 500 or not self.client_id.isprintable():
            raise ProviderError("the client id must be 1..500 printable characters")
        auth_method = self.auth_method or preset.auth_method
        if auth_method not in AUTH_METHODS:
            raise ProviderError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
        if auth_method == "apple_client_secret" and not {"team_id", "key_id"} <= set(
            self.auth_params
        ):
            raise ProviderError("apple's client secret needs team_id and key_id")
        if self.linking not in ("confirm", "never"):
            raise ProviderError("linking must be confirm or never")
        scopes = _scopes(self.scopes if self.scopes is not None else preset.scopes)
        if preset.oidc and "openid" not in scopes:
            raise ProviderError("an OpenID Connect provider needs the openid scope")
        for key, value in self.claim_mapping.items():
            if not isinstance(value, str) or key not in CLAIM_KEYS:
                raise ProviderError(f"claim mapping keys are {', '.join(CLAIM_KEYS)}")
        label = self.button_label.strip() if self.button_label else None
        if label is not None and not 1 <= len(label) <= 100:
            raise ProviderError("the button label must be 1..100 characters")
        return replace(
            self,
            name=name,
            issuer=_issuer(issuer, allow_http=allow_http),
            scopes=scopes,
            auth_method=auth_method,
            button_label=label,
            trust_email_verified=(
                preset.trust_email_verified
                if self.trust_email_verified is None
                else self.trust_email_verified
            ),
        )


# Claims a mapping may rename (upstream claim name -> ours).
CLAIM_KEYS = ("email", "email_verified", "name")


# --- statements both doors run (psycopg %s; the asyncpg door numbers them) ---------

_INSERT = (
    "INSERT INTO identity_providers (id, kind, name, button_label, issuer, client_id,"
    " client_secret_sealed, auth_method, auth_params, scopes, claim_mapping, enabled,"
    " jit_signup, linking, trust_email_verified, trust_amr, keep_tokens)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
    f" RETURNING {COLUMNS}"
)
_UPDATE = (
    "UPDATE identity_providers SET name = %s, button_label = %s, issuer = %s,"
    " client_id = %s, client_secret_sealed = %s, auth_method = %s, auth_params = %s,"
    " scopes = %s, claim_mapping = %s, enabled = %s, jit_signup = %s, linking = %s,"
    " trust_email_verified = %s, trust_amr = %s, keep_tokens = %s, updated_at = now()"
    f" WHERE id = %s RETURNING {COLUMNS}"
)


# F10: the app stopped keeping the upstream's tokens: forget those it kept.
_FORGET_TOKENS = tuple(
    f"UPDATE {table} SET tokens_sealed = NULL WHERE provider_id = %s"
    for table in ("user_identities", "federation_pending_links")
)


def _numbered(statement: str) -> str:
    parts = statement.split("%s")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


def _values(spec: ProviderSpec, sealed: str, as_json: Any) -> tuple[Any, ...]:
    """The columns from ``kind`` to ``keep_tokens``; ``as_json`` wraps the jsonb values
    (psycopg's ``Jsonb``, or ``json.dumps`` for asyncpg)."""
    return (
        spec.kind,
        spec.name,
        spec.button_label,
        spec.issuer,
        spec.client_id,
        sealed,
        spec.auth_method,
        as_json(dict(spec.auth_params)),
        list(spec.scopes or ()),
        as_json(dict(spec.claim_mapping)),
        spec.enabled,
        spec.jit_signup,
        spec.linking,
        spec.trust_email_verified,
        spec.trust_amr,
        spec.keep_tokens,
    )


# --- the CLI's door (psycopg, app context) --------------------------------------


def _audit(
    conn: SyncConn, app_id: str, event: str, provider_id: str, details: dict[str, Any]
) -> None:
    audit.record_sync(
        conn,
        event,
        "success",
        audit.SYSTEM,
        app_id=app_id,
        actor_type="operator",
        actor_id=_operator(),
        target_type="identity_provider",
        target_id=provider_id,
        details=details,
    )


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in a container
        return "operator"


def create(
    conn: SyncConn,
    box: SecretBox,
    app_id: str,
    spec: ProviderSpec,
    secret: str,
    *,
    allow_http: bool = False,
) -> Provider:
    """Store a provider with its secret sealed; audited (``federation.provider_create``)."""
    spec = spec.resolved(allow_http=allow_http)
    secret = check_secret(secret)
    provider_id = new_provider_id()
    sealed = box.seal(secret.encode(), context=seal_context(app_id, provider_id))
    row = conn.execute(_INSERT, (provider_id, *_values(spec, sealed, Jsonb))).fetchone()
    assert row is not None
    provider = _from_row(row)
    _audit(conn, app_id, "federation.provider_create", provider.id, provider.public())
    return provider


def get(conn: SyncConn, provider_id: str) -> Provider | None:
    if not ID_RE.fullmatch(provider_id):
        return None
    row = conn.execute(
        f"SELECT {COLUMNS} FROM identity_providers WHERE id = %s", (provider_id,)
    ).fetchone()
    return None if row is None else _from_row(row)


def list_all(conn: SyncConn) -> list[Provider]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM identity_providers ORDER BY created_at, id")
    return [_from_row(r) for r in rows.fetchall()]


UPDATABLE = frozenset(
    {
        "name",
        "button_label",
        "issuer",
        "client_id",
        "auth_method",
        "auth_params",
        "scopes",
        "claim_mapping",
        "enabled",
        "jit_signup",
        "linking",
        "trust_email_verified",
        "trust_amr",
        "keep_tokens",
    }
)


def update(
    conn: SyncConn,
    box: SecretBox,
    app_id: str,
    provider_id: str,
    *,
    secret: str | None = None,
    allow_http: bool = False,
    **changes: Any,
) -> Provider:
    """Change a provider (and, with ``secret``, re-seal a new secret); audited with
    the names of the fields changed, never their secret."""
    current = get(conn, provider_id)
    if current is None:
        raise ProviderError(f"no provider {provider_id!r}")
    spec = merged_spec(current, changes, allow_http=allow_http)
    sealed = current.client_secret_sealed
    if secret is not None:
        sealed = box.seal(check_secret(secret).encode(), context=seal_context(app_id, provider_id))
    row = conn.execute(_UPDATE, (*_values(spec, sealed, Jsonb)[1:], provider_id)).fetchone()
    assert row is not None
    provider = _from_row(row)
    if current.keep_tokens and not provider.keep_tokens:
        for statement in _FORGET_TOKENS:
            conn.execute(statement, (provider_id,))
    fields = sorted(changes) + (["client_secret"] if secret is not None else [])
    _audit(conn, app_id, "federation.provider_update", provider_id, {"changed": fields})
    return provider


def merged_spec(current: Provider, changes: Mapping[str, Any], *, allow_http: bool) -> ProviderSpec:
    """``current`` with ``changes`` (names from ``UPDATABLE``) applied and resolved: the
    CLI's ``update`` and the admin API's PATCH."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ProviderError(f"cannot change {', '.join(sorted(unknown))}")
    return ProviderSpec(
        kind=current.kind,
        name=changes.get("name", current.name),
        client_id=changes.get("client_id", current.client_id),
        issuer=changes.get("issuer", current.issuer),
        scopes=tuple(changes.get("scopes", current.scopes)),
        button_label=changes.get("button_label", current.button_label),
        auth_method=changes.get("auth_method", current.auth_method),
        auth_params=changes.get("auth_params", current.auth_params),
        claim_mapping=changes.get("claim_mapping", current.claim_mapping),
        enabled=changes.get("enabled", current.enabled),
        jit_signup=changes.get("jit_signup", current.jit_signup),
        linking=changes.get("linking", current.linking),
        trust_email_verified=changes.get("trust_email_verified", current.trust_email_verified),
        trust_amr=changes.get("trust_amr", current.trust_amr),
        keep_tokens=changes.get("keep_tokens", current.keep_tokens),
    ).resolved(allow_http=allow_http)


def delete(conn: SyncConn, app_id: str, provider_id: str) -> bool:
    """Delete a provider and, with it, the identities linked through it; audited."""
    if not ID_RE.fullmatch(provider_id):
        return False
    count = conn.execute(
        "SELECT count(*) FROM user_identities WHERE provider_id = %s", (provider_id,)
    ).fetchone()
    cur = conn.execute("DELETE FROM identity_providers WHERE id = %s", (provider_id,))
    if cur.rowcount == 0:
        return False
    unlinked = int(count[0]) if count else 0
    _audit(conn, app_id, "federation.provider_delete", provider_id, {"identities": unlinked})
    return True


# --- the service's door (asyncpg, app context) ------------------------------------


async def load(conn: asyncpg.Connection, provider_id: str) -> Provider | None:
    """An enabled provider of this app, or None (unknown, malformed, disabled: the
    same answer; a provider id of app A names nothing at app B)."""
    if not isinstance(provider_id, str) or not ID_RE.fullmatch(provider_id):
        return None
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM identity_providers WHERE id = $1 AND enabled", provider_id
    )
    return None if row is None else _from_row(row)


async def enabled(conn: asyncpg.Connection) -> list[Provider]:
    """The app's enabled providers, for the hosted login page's buttons."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM identity_providers WHERE enabled ORDER BY created_at, id"
    )
    return [_from_row(r) for r in rows]


# --- the admin API's door (asyncpg, the router's app context; issue 15) ------------
# The same rules as the CLI's door (resolved specs, sealed secrets, audited with the
# names of what changed, never a secret), with the acting admin client as the actor.


async def _audit_async(
    conn: asyncpg.Connection,
    event: str,
    provider_id: str,
    details: dict[str, Any],
    actor: tuple[str, str | None],
    meta: audit.RequestMeta,
) -> None:
    await audit.record(
        conn,
        event,
        "success",
        meta,
        actor_type=actor[0],
        actor_id=actor[1],
        target_type="identity_provider",
        target_id=provider_id,
        details=details,
    )


async def create_async(
    conn: asyncpg.Connection,
    box: SecretBox,
    app_id: str,
    spec: ProviderSpec,
    secret: str,
    *,
    actor: tuple[str, str | None],
    allow_http: bool = False,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Provider:
    spec = spec.resolved(allow_http=allow_http)
    secret = check_secret(secret)
    provider_id = new_provider_id()
    sealed = box.seal(secret.encode(), context=seal_context(app_id, provider_id))
    row = await conn.fetchrow(_numbered(_INSERT), provider_id, *_values(spec, sealed, json.dumps))
    assert row is not None
    provider = _from_row(row)
    await _audit_async(
        conn, "federation.provider_create", provider.id, provider.public(), actor, meta
    )
    return provider


async def get_async(conn: asyncpg.Connection, provider_id: str) -> Provider | None:
    """A provider of this app, enabled or not; None for anything else (B1)."""
    if not isinstance(provider_id, str) or not ID_RE.fullmatch(provider_id):
        return None
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM identity_providers WHERE id = $1", provider_id
    )
    return None if row is None else _from_row(row)


async def page_async(
    conn: asyncpg.Connection, *, after: tuple[datetime, str] | None, limit: int
) -> list[Provider]:
    """Providers by (created_at, id) after the keyset ``after`` (two statements: see
    ``oneauth.oauth.clients.page_async``)."""
    if after is None:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM identity_providers ORDER BY created_at, id LIMIT $1", limit
        )
    else:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM identity_providers WHERE (created_at, id) > ($1, $2)"
            " ORDER BY created_at, id LIMIT $3",
            after[0],
            after[1],
            limit,
        )
    return [_from_row(r) for r in rows]


async def update_async(
    conn: asyncpg.Connection,
    box: SecretBox,
    app_id: str,
    provider_id: str,
    *,
    actor: tuple[str, str | None],
    secret: str | None = None,
    allow_http: bool = False,
    meta: audit.RequestMeta = audit.SYSTEM,
    **changes: Any,
) -> Provider | None:
    """Change a provider; None if this app has no such provider."""
    current = await get_async(conn, provider_id)
    if current is None:
        return None
    spec = merged_spec(current, changes, allow_http=allow_http)
    sealed = current.client_secret_sealed
    if secret is not None:
        sealed = box.seal(check_secret(secret).encode(), context=seal_context(app_id, provider_id))
    row = await conn.fetchrow(
        _numbered(_UPDATE), *_values(spec, sealed, json.dumps)[1:], provider_id
    )
    assert row is not None
    if current.keep_tokens and not row["keep_tokens"]:
        for statement in _FORGET_TOKENS:
            await conn.execute(_numbered(statement), provider_id)
    fields = sorted(changes) + (["client_secret"] if secret is not None else [])
    await _audit_async(
        conn, "federation.provider_update", provider_id, {"changed": fields}, actor, meta
    )
    return _from_row(row)


async def delete_async(
    conn: asyncpg.Connection,
    provider_id: str,
    *,
    actor: tuple[str, str | None],
    meta: audit.RequestMeta = audit.SYSTEM,
) -> bool:
    """Delete a provider and the identities linked through it; False if unknown here."""
    if not isinstance(provider_id, str) or not ID_RE.fullmatch(provider_id):
        return False
    unlinked = await conn.fetchval(
        "SELECT count(*) FROM user_identities WHERE provider_id = $1", provider_id
    )
    gone = await conn.fetchval(
        "DELETE FROM identity_providers WHERE id = $1 RETURNING id", provider_id
    )
    if gone is None:
        return False
    await _audit_async(
        conn,
        "federation.provider_delete",
        provider_id,
        {"identities": int(unlinked or 0)},
        actor,
        meta,
    )
    return True
