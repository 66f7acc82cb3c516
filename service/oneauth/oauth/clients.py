"""OAuth clients of one app: registry (SQL), secrets, and the per-process cache.

Client ids are ``cl_`` + 128 random bits, so they never collide with a user's
sub (a UUID) (T4). Confidential clients get server-generated 256-bit secrets,
shown once and stored as SHA-256 (O5): a slow hash adds nothing for secrets of
that entropy and would make every token request cost an argon2 run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
import psycopg
from jwcrypto import jwk
from psycopg.types.json import Jsonb

from oneauth.admin.scopes import check_client_scopes
from oneauth.apps.policy import MAX_TOKEN_TTL

CHANNEL = "oneauth_clients"
SECRET_PREFIX = "ocs_"
GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
# private_key_jwt: RFC 7523 section 2.2 / OIDC Core 9, see oneauth.oauth.client_assertion.
AUTH_METHODS = SECRET_METHODS | {"none", "private_key_jwt"}
# Public key parameters only: a JWK Set with private parts is refused (RFC 7517/7518).
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
USER_SCOPES = ("openid", "profile", "email", "offline_access")
Kind = Literal["public", "confidential"]

COLUMNS = (
    "client_id, name, kind, first_party, redirect_uris, post_logout_redirect_uris, grant_types,"
    " scopes, token_endpoint_auth_method, access_token_ttl, refresh_token_ttl, created_at,"
    " disabled_at, jwks, org_id"
)


class ClientError(ValueError):
    """A client registration that is not acceptable; the message says why."""


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    kind: Kind
    first_party: bool
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: frozenset[str]
    scopes: frozenset[str]
    token_endpoint_auth_method: str
    access_token_ttl: int | None
    refresh_token_ttl: int | None
    created_at: datetime
    disabled: bool
    jwks: dict[str, Any] | None = None  # public keys, for private_key_jwt
    # A client registered for one organization (issue 13): its client_credentials
    # tokens carry that org's id and slug, and it gets none while the org is suspended.
    org_id: str | None = None
    # The valid secrets' hashes, each with when it stops being valid (epoch seconds,
    # inf: never). A secret replaced with an overlap expires by the clock, with no
    # change notice, so a cached client checks it at each use, not when it was loaded.
    live_secrets: tuple[tuple[bytes, float], ...] = field(default=(), repr=False)

    @property
    def is_confidential(self) -> bool:
        return self.kind == "confidential"

    def check_secret(self, secret: str) -> bool:
        digest = hash_secret(secret)
        now = time.time()
        # Compare against every valid secret in constant time each (rotation overlap).
        matches = [
            hmac.compare_digest(digest, known) and now < until for known, until in self.live_secrets
        ]
        return any(matches)

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "kind": self.kind,
            "first_party": self.first_party,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": sorted(self.grant_types),
            "scopes": sorted(self.scopes),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "access_token_ttl": self.access_token_ttl,
            "refresh_token_ttl": self.refresh_token_ttl,
            "created_at": self.created_at.isoformat(),
            "disabled": self.disabled,
            "jwks": self.jwks,
            "org_id": self.org_id,
        }


def new_client_id() -> str:
    return "cl_" + secrets.token_urlsafe(16)


def new_secret() -> tuple[str, bytes]:
    raw = SECRET_PREFIX + secrets.token_urlsafe(32)
    return raw, hash_secret(raw)


def hash_secret(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()


def _from_row(row: Any, live_secrets: Sequence[tuple[bytes, float]] = ()) -> Client:
    """A client from a row of COLUMNS, with its valid secrets (hash, expiry) when
    the caller knows them."""
    return Client(
        client_id=row[0],
        name=row[1],
        kind=row[2],
        first_party=row[3],
        redirect_uris=tuple(row[4]),
        post_logout_redirect_uris=tuple(row[5]),
        grant_types=frozenset(row[6]),
        scopes=frozenset(row[7]),
        token_endpoint_auth_method=row[8],
        access_token_ttl=row[9],
        refresh_token_ttl=row[10],
        created_at=row[11],
        disabled=row[12] is not None,
        jwks=json.loads(row[13]) if isinstance(row[13], str) else row[13],
        org_id=row[14],
        live_secrets=tuple(live_secrets),
    )


def validate_redirect_uri(uri: str, own_origin: str | None = None) -> str:
    """Registered redirect URIs are absolute, without fragment; http only for loopback
    or, for oneauth's own console (``own_origin``: the public URL, http only outside
    production), below the service's own origin."""
    parts = urlsplit(uri)
    if not parts.scheme or (not parts.netloc and parts.scheme in ("http", "https")):
        raise ClientError(f"redirect URI {uri!r} must be absolute")
    if parts.fragment or "#" in uri:
        raise ClientError(f"redirect URI {uri!r} must not contain a fragment")
    ours = own_origin is not None and uri.startswith(own_origin.rstrip("/") + "/")
    if (
        parts.scheme == "http"
        and parts.hostname not in ("127.0.0.1", "::1", "localhost")
        and not ours
    ):
        raise ClientError(f"redirect URI {uri!r}: plain http is allowed only for loopback")
    if parts.scheme in ("javascript", "data", "file", "vbscript"):
        raise ClientError(f"redirect URI scheme {parts.scheme!r} is not allowed")
    if parts.username or parts.password:
        raise ClientError(f"redirect URI {uri!r} must not carry user information")
    return uri


@dataclass(frozen=True)
class ClientSpec:
    name: str
    kind: Kind
    grant_types: frozenset[str]
    scopes: frozenset[str]
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    first_party: bool = False
    auth_method: str | None = None
    access_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    jwks: dict[str, Any] | None = None
    org_id: str | None = None

    def validated(self, own_origin: str | None = None) -> ClientSpec:
        if not 1 <= len(self.name.strip()) <= 200:
            raise ClientError("client name must be 1 to 200 characters")
        if self.kind not in ("public", "confidential"):
            raise ClientError("kind must be public or confidential")
        unknown = self.grant_types - GRANT_TYPES
        if unknown or not self.grant_types:
            raise ClientError(
                f"grant types must be among {', '.join(sorted(GRANT_TYPES))}"
                " (implicit and password grants are not supported)"
            )
        if "client_credentials" in self.grant_types and self.kind != "confidential":
            raise ClientError("client_credentials needs a confidential client")
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            raise ClientError("authorization_code needs at least one redirect URI")
        for uri in (*self.redirect_uris, *self.post_logout_redirect_uris):
            validate_redirect_uri(uri, own_origin)
        for scope in self.scopes:
            if not scope or any(ch in scope for ch in ' "\\') or not scope.isprintable():
                raise ClientError(f"invalid scope {scope!r}")
        # Admin scopes (issue 15, B4): client_credentials clients only, never a user's token.
        refused = check_client_scopes(
            self.scopes, self.grant_types, org_client=self.org_id is not None
        )
        if refused is not None:
            raise ClientError(refused)
        # Access tokens live at most as long as a retired signing key stays published.
        if self.access_token_ttl is not None and not 60 <= self.access_token_ttl <= MAX_TOKEN_TTL:
            raise ClientError(f"access token lifetime must be 60 to {MAX_TOKEN_TTL} seconds")
        if self.refresh_token_ttl is not None and not 60 <= self.refresh_token_ttl <= 31536000:
            raise ClientError("refresh token lifetime must be 60 to 31536000 seconds")
        method = self.auth_method or ("none" if self.kind == "public" else "client_secret_basic")
        if method not in AUTH_METHODS or (method == "none") != (self.kind == "public"):
            raise ClientError(
                "public clients use auth method none; confidential ones a secret or a key"
            )
        if (method == "private_key_jwt") != (self.jwks is not None):
            raise ClientError("private_key_jwt needs the client's public JWK Set (and only it)")
        if self.jwks is not None:
            validate_jwks(self.jwks)
        if self.org_id is not None and "client_credentials" not in self.grant_types:
            raise ClientError("an org client (--org) needs the client_credentials grant")
        return replace(self, name=self.name.strip(), auth_method=method)


def validate_jwks(jwks: Any) -> None:
    """A client's JWK Set: 1-10 public signing keys, each with a distinct kid."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= 10:
        raise ClientError("jwks must be a JWK Set with 1 to 10 keys")
    kids = set()
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP"):
            raise ClientError("each JWK must be an RSA, EC or OKP key")
        if _PRIVATE_JWK_MEMBERS & key.keys():
            raise ClientError("the JWK Set must hold public keys only")
        if not isinstance(key.get("kid"), str) or not key["kid"] or key["kid"] in kids:
            raise ClientError("each JWK needs a distinct kid")
        if key.get("use", "sig") != "sig":
            raise ClientError("the keys must be signing keys (use: sig)")
        kids.add(key["kid"])
    try:
        jwk.JWKSet.from_json(json.dumps(jwks))
    except Exception as exc:  # jwcrypto raises several types for bad key material
        raise ClientError(f"jwks is not a valid JWK Set: {exc}") from None


# --- statements both repositories run ----------------------------------------------
# Written once for psycopg (%s); the asyncpg door numbers them ($1, $2, ...).

_INSERT_CLIENT = (
    "INSERT INTO clients (client_id, name, kind, first_party, redirect_uris,"
    " post_logout_redirect_uris, grant_types, scopes, token_endpoint_auth_method,"
    " access_token_ttl, refresh_token_ttl, jwks, org_id)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
    f" RETURNING {COLUMNS}"
)
_INSERT_SECRET = "INSERT INTO client_secrets (client_id, secret_hash) VALUES (%s, %s)"
_UPDATE_CLIENT = (
    "UPDATE clients SET name=%s, first_party=%s, redirect_uris=%s,"
    " post_logout_redirect_uris=%s, grant_types=%s, scopes=%s,"
    " token_endpoint_auth_method=%s, access_token_ttl=%s, refresh_token_ttl=%s, jwks=%s,"
    " disabled_at = CASE WHEN %s::boolean IS NULL THEN disabled_at"
    "   WHEN %s::boolean THEN coalesce(disabled_at, now()) ELSE NULL END,"
    " updated_at=now() WHERE client_id=%s"
)
_EXPIRE_SECRETS = (
    "UPDATE client_secrets SET expires_at = least(coalesce(expires_at, 'infinity'),"
    " now() + make_interval(secs => %s::integer)) WHERE client_id = %s AND revoked_at IS NULL"
)


def _numbered(statement: str) -> str:
    """``%s`` placeholders as asyncpg's ``$n``, in order."""
    parts = statement.split("%s")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


def _insert_args(client_id: str, spec: ClientSpec, jwks: Any) -> tuple[Any, ...]:
    return (
        client_id,
        spec.name,
        spec.kind,
        spec.first_party,
        list(spec.redirect_uris),
        list(spec.post_logout_redirect_uris),
        sorted(spec.grant_types),
        sorted(spec.scopes),
        spec.auth_method,
        spec.access_token_ttl,
        spec.refresh_token_ttl,
        jwks,
        spec.org_id,
    )


def _update_args(
    client_id: str, spec: ClientSpec, jwks: Any, disabled: bool | None
) -> tuple[Any, ...]:
    return (
        spec.name,
        spec.first_party,
        list(spec.redirect_uris),
        list(spec.post_logout_redirect_uris),
        sorted(spec.grant_types),
        sorted(spec.scopes),
        spec.auth_method,
        spec.access_token_ttl,
        spec.refresh_token_ttl,
        jwks,
        disabled,
        disabled,
        client_id,
    )


def merged_spec(
    current: Client, changes: dict[str, Any], own_origin: str | None = None
) -> ClientSpec:
    """``current`` with ``changes`` applied, validated: a list given replaces the whole
    list; the kind and the org never change (the CLI's ``update`` and the admin API's
    PATCH)."""
    method = changes.get("auth_method") or current.token_endpoint_auth_method
    return ClientSpec(
        name=changes.get("name") or current.name,
        kind=current.kind,
        grant_types=frozenset(changes.get("grant_types") or current.grant_types),
        scopes=frozenset(changes.get("scopes") or current.scopes),
        redirect_uris=tuple(changes.get("redirect_uris") or current.redirect_uris),
        post_logout_redirect_uris=tuple(
            changes.get("post_logout_redirect_uris") or current.post_logout_redirect_uris
        ),
        first_party=changes.get("first_party", current.first_party),
        auth_method=method,
        access_token_ttl=changes.get("access_token_ttl", current.access_token_ttl),
        refresh_token_ttl=changes.get("refresh_token_ttl", current.refresh_token_ttl),
        jwks=changes.get("jwks") or (current.jwks if method == "private_key_jwt" else None),
        org_id=current.org_id,
    ).validated(own_origin)


def new_spec(
    *,
    name: str,
    confidential: bool,
    grant_types: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    redirect_uris: Sequence[str] = (),
    post_logout_redirect_uris: Sequence[str] = (),
    first_party: bool = False,
    auth_method: str | None = None,
    access_token_ttl: int | None = None,
    refresh_token_ttl: int | None = None,
    jwks: dict[str, Any] | None = None,
    org_id: str | None = None,
) -> ClientSpec:
    """A new client's spec with the defaults the CLI and the admin API share: grants
    authorization_code + refresh_token, the user scopes."""
    return ClientSpec(
        name=name,
        kind="confidential" if confidential else "public",
        grant_types=frozenset(grant_types or ("authorization_code", "refresh_token")),
        scopes=frozenset(scopes if scopes is not None else USER_SCOPES),
        redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout_redirect_uris),
        first_party=first_party,
        auth_method=auth_method,
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
        jwks=jwks,
        org_id=org_id,
    )


# --- synchronous repository (CLI, provisioning) -------------------------------------

SyncConn = psycopg.Connection[tuple[Any, ...]]


def create(
    conn: SyncConn,
    spec: ClientSpec,
    *,
    client_id: str | None = None,
    own_origin: str | None = None,
) -> tuple[Client, str | None]:
    """Register a client; returns it and, for a confidential one, its secret (shown once).

    ``client_id``: a well-known id (the control plane's console client) instead
    of a random one; ``own_origin``: see ``validate_redirect_uri``.
    """
    spec = spec.validated(own_origin)
    if spec.org_id is not None:
        # In the app's context: another app's org id names nothing here (B1).
        org = conn.execute("SELECT 1 FROM organizations WHERE id = %s", (spec.org_id,))
        if org.fetchone() is None:
            raise ClientError(f"no organization {spec.org_id!r} in this app")
    client_id = client_id or new_client_id()
    row = conn.execute(
        _INSERT_CLIENT,
        _insert_args(client_id, spec, None if spec.jwks is None else Jsonb(spec.jwks)),
    ).fetchone()
    secret = None
    live: list[tuple[bytes, float]] = []
    if spec.auth_method in SECRET_METHODS:
        secret, digest = new_secret()
        conn.execute(_INSERT_SECRET, (client_id, digest))
        live.append((digest, math.inf))  # a first secret does not expire
    notify(conn)
    return _from_row(row, live), secret


def get(conn: SyncConn, client_id: str) -> Client | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM clients WHERE client_id = %s", (client_id,))
    found = row.fetchone()
    return None if found is None else _from_row(found)


def list_all(conn: SyncConn) -> list[Client]:
    return [
        _from_row(r) for r in conn.execute(f"SELECT {COLUMNS} FROM clients ORDER BY created_at")
    ]


def update(conn: SyncConn, client_id: str, **changes: Any) -> Client:
    """``own_origin`` among the changes: see ``validate_redirect_uri``."""
    own_origin: str | None = changes.pop("own_origin", None)
    current = get(conn, client_id)
    if current is None:
        raise ClientError(f"no client {client_id!r}")
    spec = merged_spec(current, changes, own_origin)
    conn.execute(
        _UPDATE_CLIENT,
        _update_args(
            client_id,
            spec,
            None if spec.jwks is None else Jsonb(spec.jwks),
            changes.get("disabled"),
        ),
    )
    notify(conn)
    updated = get(conn, client_id)
    assert updated is not None
    return updated


def rotate_secret(conn: SyncConn, client_id: str, *, overlap_seconds: int = 86400) -> str:
    """A new secret; older ones keep working for ``overlap_seconds`` (0 = revoke now)."""
    current = get(conn, client_id)
    if current is None or current.token_endpoint_auth_method not in SECRET_METHODS:
        raise ClientError(f"no client {client_id!r} that authenticates with a secret")
    conn.execute(_EXPIRE_SECRETS, (overlap_seconds, client_id))
    secret, digest = new_secret()
    conn.execute(_INSERT_SECRET, (client_id, digest))
    notify(conn)
    return secret


def delete(conn: SyncConn, client_id: str) -> bool:
    """Delete a client with its secrets, sessions and refresh tokens."""
    gone = conn.execute("DELETE FROM clients WHERE client_id = %s RETURNING 1", (client_id,))
    notify(conn)
    return gone.fetchone() is not None


def notify(conn: SyncConn) -> None:
    # The app context's role cannot read the registry, so the payload is the
    # schema's app, passed by the caller's search_path; caches key on app_id.
    app_id = conn.execute("SELECT current_setting('oneauth.app_id', true)").fetchone()
    if app_id and app_id[0]:
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, app_id[0]))


def default_client_spec() -> ClientSpec:
    return ClientSpec(
        name="First-party app",
        kind="public",
        grant_types=frozenset({"refresh_token"}),
        scopes=frozenset(USER_SCOPES),
        first_party=True,
    )


# --- the asynchronous repository (the admin API, in the router's app context) -------


async def create_async(
    conn: asyncpg.Connection, app_id: str, spec: ClientSpec
) -> tuple[Client, str | None]:
    """``create`` on the router's connection: the client and a confidential client's
    secret (shown once, stored as SHA-256: O5). Caches learn it at commit (NOTIFY)."""
    spec = spec.validated()
    if spec.org_id is not None and not await conn.fetchval(
        "SELECT 1 FROM organizations WHERE id = $1", spec.org_id
    ):
        raise ClientError(f"no organization {spec.org_id!r} in this app")
    client_id = new_client_id()
    row = await conn.fetchrow(
        _numbered(_INSERT_CLIENT),
        *_insert_args(client_id, spec, None if spec.jwks is None else json.dumps(spec.jwks)),
    )
    secret = None
    live: list[tuple[bytes, float]] = []
    if spec.auth_method in SECRET_METHODS:
        secret, digest = new_secret()
        await conn.execute(_numbered(_INSERT_SECRET), client_id, digest)
        live.append((digest, math.inf))  # a first secret does not expire
    await notify_async(conn, app_id)
    return _from_row(row, live), secret


async def get_async(conn: asyncpg.Connection, client_id: str) -> Client | None:
    if not client_id.startswith("cl_") or len(client_id) > 80:
        return None
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM clients WHERE client_id = $1", client_id)
    return None if row is None else _from_row(row)


async def page_async(
    conn: asyncpg.Connection, *, after: tuple[datetime, str] | None, limit: int
) -> list[Client]:
    """Clients by (created_at, client_id), after the keyset ``after``; ``limit`` rows.
    Two statements, not one with ``$1 IS NULL OR ...``: a generic plan then still
    starts at the cursor instead of scanning from the first row."""
    if after is None:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM clients ORDER BY created_at, client_id LIMIT $1", limit
        )
    else:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM clients WHERE (created_at, client_id) > ($1, $2)"
            " ORDER BY created_at, client_id LIMIT $3",
            after[0],
            after[1],
            limit,
        )
    return [_from_row(r) for r in rows]


async def update_async(
    conn: asyncpg.Connection, app_id: str, client_id: str, **changes: Any
) -> Client:
    """``update`` on the router's connection (``disabled=True`` disables)."""
    current = await get_async(conn, client_id)
    if current is None:
        raise ClientError(f"no client {client_id!r}")
    spec = merged_spec(current, changes)
    await conn.execute(
        _numbered(_UPDATE_CLIENT),
        *_update_args(
            client_id,
            spec,
            None if spec.jwks is None else json.dumps(spec.jwks),
            changes.get("disabled"),
        ),
    )
    await notify_async(conn, app_id)
    updated = await get_async(conn, client_id)
    assert updated is not None
    return updated


async def rotate_secret_async(
    conn: asyncpg.Connection, app_id: str, client_id: str, *, overlap_seconds: int = 86400
) -> str:
    """``rotate_secret`` on the router's connection; the new secret is shown once."""
    current = await get_async(conn, client_id)
    if current is None or current.token_endpoint_auth_method not in SECRET_METHODS:
        raise ClientError(f"no client {client_id!r} that authenticates with a secret")
    await conn.execute(_numbered(_EXPIRE_SECRETS), overlap_seconds, client_id)
    secret, digest = new_secret()
    await conn.execute(_numbered(_INSERT_SECRET), client_id, digest)
    await notify_async(conn, app_id)
    return secret


async def notify_async(conn: asyncpg.Connection, app_id: str) -> None:
    # Sent at commit: every process's ClientCache drops the app's clients.
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, app_id)


# --- the per-process cache (service) -----------------------------------------------

# The valid secrets and, in the same order, when each expires (ClientCache).
_LIVE_SECRETS = (
    " FROM client_secrets cs WHERE cs.client_id = c.client_id AND cs.revoked_at IS NULL"
    " AND (cs.expires_at IS NULL OR cs.expires_at > now()) ORDER BY cs.secret_hash"
)
_LOAD = (
    f"SELECT {COLUMNS}, ARRAY(SELECT secret_hash{_LIVE_SECRETS}),"
    " ARRAY(SELECT coalesce(extract(epoch FROM cs.expires_at)::float8, 'infinity')"
    f"{_LIVE_SECRETS}) FROM clients c WHERE client_id = $1"
)


class ClientCache:
    """Clients by (app_id, client_id), TTL-bounded, dropped on NOTIFY."""

    # A change notice drops an app's clients at once; secret expiry is checked at use
    # (Client.check_secret). So the TTL only bounds a lost notice, as the registry's.
    def __init__(self, ttl: float = 300.0, max_entries: int = 50_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[tuple[str, str], tuple[float, Client | None]] = {}
        self._defaults: dict[str, tuple[float, str | None]] = {}

    def on_change(self, app_id: str | None) -> None:
        if app_id is None:
            self._cache.clear()
            self._defaults.clear()
        else:
            self._defaults.pop(app_id, None)
            for key in [k for k in self._cache if k[0] == app_id]:
                del self._cache[key]

    async def default_client(self, conn: asyncpg.Connection, app_id: str) -> Client | None:
        """The app's first-party public client, used by the first-party JSON API."""
        now = time.monotonic()
        hit = self._defaults.get(app_id)
        if hit is None or hit[0] <= now:
            client_id = await conn.fetchval(
                "SELECT client_id FROM clients WHERE first_party AND kind = 'public'"
                " AND disabled_at IS NULL ORDER BY created_at LIMIT 1"
            )
            hit = self._defaults[app_id] = (now + self._ttl, client_id)
        return None if hit[1] is None else await self.get(conn, app_id, hit[1])

    async def get(self, conn: asyncpg.Connection, app_id: str, client_id: str) -> Client | None:
        if not client_id.startswith("cl_") or len(client_id) > 80:
            return None
        now = time.monotonic()
        hit = self._cache.get((app_id, client_id))
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await conn.fetchrow(_LOAD, client_id)
        client = None
        if row is not None:  # the secrets' hashes and expiries, in one order
            client = _from_row(row, list(zip(row[15], row[16], strict=True)))
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[(app_id, client_id)] = (now + self._ttl, client)
        return client
