"""Per-app signing keys: storage, rotation, and the in-memory cache that signs.

Keys live in the app's schema (``signing_keys``), private parts sealed with the
master key and bound to ``app:<app_id>/signing-key/<kid>``. Each process loads an
app's keys once, decrypts them once, pre-renders the JWKS document and builds
the app's verifier; nothing on the hot path parses PEM or JSON. A rotation
anywhere sends NOTIFY ``oneauth_keys`` and every process reloads.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import msgspec
import psycopg
import structlog

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import MAX_TOKEN_TTL, policy_of
from oneauth.db.ops import LOCK_NAMESPACE
from oneauth.oauth.models import JwkSet
from oneauth.secretbox import SecretBox
from oneauth.tokens.keys import Alg, SigningKey, generate_signing_key
from oneauth.verifier import Verifier

CHANNEL = "oneauth_keys"
# JWKS responses may be cached this long by verifiers.
JWKS_MAX_AGE = 300
# A next key is published this long before it may sign, so every cached JWKS has it.
NEXT_KEY_DELAY = timedelta(seconds=JWKS_MAX_AGE + 60)
# A retired key stays published until every token it signed has expired and
# every cached JWKS has been refreshed.
RETIRED_PUBLISH = timedelta(seconds=MAX_TOKEN_TTL + JWKS_MAX_AGE + 60)
ID_TOKEN_ALG: Alg = "RS256"  # OIDC Core 15.1: RS256 must be supported


def key_context(app_id: str, kid: str) -> str:
    return f"app:{app_id}/signing-key/{kid}"


def algs_for(app: AppRecord) -> tuple[Alg, ...]:
    default = policy_of(app).signing_alg
    return (default,) if default == ID_TOKEN_ALG else (default, ID_TOKEN_ALG)


# --- storage (synchronous, for provisioning and the CLI) ------------------------------

SyncConn = psycopg.Connection[tuple[Any, ...]]


def _insert(
    conn: SyncConn,
    box: SecretBox,
    app_id: str,
    key: SigningKey,
    state: str,
    activate_after: datetime | None = None,
) -> None:
    sealed = box.seal(key.export_private_json(), context=key_context(app_id, key.kid))
    conn.execute(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_sealed, activate_after,"
        " activated_at) VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s = 'active' THEN now() END)",
        (key.kid, key.alg, state, json.dumps(key.public_jwk_dict), sealed, activate_after, state),
    )


def seed(conn: SyncConn, app: AppRecord, box: SecretBox) -> list[str]:
    """An active and a pre-published next key for each algorithm that lacks one.

    Idempotent: run at provisioning and after every migration, so an app whose
    algorithm setting changed, or that predates keys, gets what it needs.
    """
    kids = []
    now = datetime.now(UTC)
    have = {str(r[0]) for r in conn.execute("SELECT alg FROM signing_keys WHERE state = 'active'")}
    for alg in algs_for(app):
        if alg in have:
            continue
        active, upcoming = generate_signing_key(alg), generate_signing_key(alg)
        _insert(conn, box, app.app_id, active, "active")
        _insert(conn, box, app.app_id, upcoming, "next", now + NEXT_KEY_DELAY)
        kids += [active.kid, upcoming.kid]
    return kids


@dataclass
class RotationReport:
    activated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class RotationRefused(RuntimeError):
    pass


# --- rotation and listing (asyncpg, app context: the CLI's run_in_app and the admin API) --


async def _insert_async(
    conn: asyncpg.Connection,
    box: SecretBox,
    app_id: str,
    key: SigningKey,
    state: str,
    activate_after: datetime | None = None,
) -> None:
    sealed = box.seal(key.export_private_json(), context=key_context(app_id, key.kid))
    await conn.execute(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_sealed, activate_after,"
        " activated_at) VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3 = 'active' THEN now() END)",
        key.kid,
        key.alg,
        state,
        json.dumps(key.public_jwk_dict),
        sealed,
        activate_after,
    )


def rotation_mode(*, emergency: bool, revoke_all: bool) -> str:
    return "emergency_all" if revoke_all else "emergency" if emergency else "normal"


async def rotate(
    conn: asyncpg.Connection,
    app: AppRecord,
    box: SecretBox,
    *,
    actor_type: str,
    actor_id: str | None,
    emergency: bool = False,
    force: bool = False,
    revoke_all: bool = False,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> RotationReport:
    """Promote each algorithm's next key, retire (or revoke) the active one, publish a new next.

    Runs in the caller's transaction, in the app's context; audited in the app's log
    (``keys.rotate``, or ``keys.emergency_rotation``, a security event) with the actor,
    and announced to every process (NOTIFY ``oneauth_keys``) at commit. Refuses to
    promote a next key younger than the JWKS cache time unless ``emergency`` or
    ``force``. ``revoke_all`` (with ``emergency``): see ``revoke_every_key``. The CLI
    (``oneauth keys rotate``) and the admin API (``POST /admin/v1/keys/rotate``) both
    call this (T3).
    """
    if revoke_all and not emergency:
        raise RotationRefused("revoking every key is an emergency rotation (--emergency)")
    # One rotation of an app at a time, taken before anything is read: a second one
    # waiting on the row locks would read the keys as they were when its statement
    # began and promote a key no JWKS has published (or collide on the active key).
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, f"keys:{app.app_id}"
    )
    report = (
        await revoke_every_key(conn, app, box)
        if revoke_all
        else await _rotate(conn, app, box, emergency=emergency, force=force)
    )
    # The CLI has no request context: the security log line names the app itself.
    with structlog.contextvars.bound_contextvars(app_id=app.app_id):
        await audit.record(
            conn,
            "keys.emergency_rotation" if emergency else "keys.rotate",
            "success",
            meta,
            actor_type=actor_type,
            actor_id=actor_id,
            target_type="app",
            target_id=app.app_id,
            details={
                "mode": rotation_mode(emergency=emergency, revoke_all=revoke_all),
                **{k: list(v) for k, v in report.__dict__.items()},
            },
        )
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, app.app_id)
    return report


async def _rotate(
    conn: asyncpg.Connection, app: AppRecord, box: SecretBox, *, emergency: bool, force: bool
) -> RotationReport:
    report = RotationReport()
    now = datetime.now(UTC)
    rows = await conn.fetch(
        "SELECT kid, alg, state, activate_after FROM signing_keys"
        " WHERE state IN ('next', 'active') FOR UPDATE"
    )
    by_alg: dict[str, dict[str, tuple[str, datetime | None]]] = {}
    for kid, alg, state, activate_after in rows:
        by_alg.setdefault(alg, {})[state] = (kid, activate_after)
    for alg in algs_for(app):
        states = by_alg.get(alg, {})
        upcoming = states.get("next")
        if upcoming and upcoming[1] and upcoming[1] > now and not (emergency or force):
            raise RotationRefused(
                f"the next {alg} key {upcoming[0]} was published at most "
                f"{int(NEXT_KEY_DELAY.total_seconds())} s ago and may not be in every cached "
                f"JWKS yet; promote it after {upcoming[1].isoformat()} (or use --force)"
            )
    for alg in algs_for(app):
        states = by_alg.get(alg, {})
        active, upcoming = states.get("active"), states.get("next")
        if active:
            if emergency:
                await conn.execute(
                    "UPDATE signing_keys SET state = 'revoked', revoked_at = now(),"
                    " retired_at = now() WHERE kid = $1",
                    active[0],
                )
                report.revoked.append(active[0])
            else:
                await conn.execute(
                    "UPDATE signing_keys SET state = 'retired', retired_at = now(),"
                    " publish_until = $1 WHERE kid = $2",
                    now + RETIRED_PUBLISH,
                    active[0],
                )
                report.retired.append(active[0])
        if upcoming:
            await conn.execute(
                "UPDATE signing_keys SET state = 'active', activated_at = now() WHERE kid = $1",
                upcoming[0],
            )
            report.activated.append(upcoming[0])
        else:  # no next key (e.g. the algorithm was just switched): one signs at once
            fresh = generate_signing_key(alg)
            await _insert_async(conn, box, app.app_id, fresh, "active")
            report.activated.append(fresh.kid)
        new_next = generate_signing_key(alg)
        await _insert_async(conn, box, app.app_id, new_next, "next", now + NEXT_KEY_DELAY)
        report.published.append(new_next.kid)
    report.removed = [
        str(r[0])
        for r in await conn.fetch(
            "DELETE FROM signing_keys WHERE (state = 'retired' AND publish_until < now())"
            " OR (state = 'revoked' AND revoked_at < now() - interval '30 days') RETURNING kid"
        )
    ]
    return report


async def revoke_every_key(
    conn: asyncpg.Connection, app: AppRecord, box: SecretBox
) -> RotationReport:
    """Revoke every key of the app, next and retired ones too, and sign with fresh ones now (T3).

    For a compromise that may reach beyond the active key (a leaked database
    dump with the master key, say): the published next key could be in the
    attacker's hands as well, and a retired key still verifies what it signed.
    Everything is unpublished at once; each algorithm gets a new active key
    that signs immediately (no verifier has it cached yet: their JWKS cache
    refreshes on the unknown kid) and a new next key for the following rotation.
    """
    report = RotationReport()
    now = datetime.now(UTC)
    report.revoked = [
        str(r[0])
        for r in await conn.fetch(
            "UPDATE signing_keys SET state = 'revoked', revoked_at = now(),"
            " retired_at = coalesce(retired_at, now())"
            " WHERE state IN ('next', 'active', 'retired') RETURNING kid"
        )
    ]
    for alg in algs_for(app):
        fresh, upcoming = generate_signing_key(alg), generate_signing_key(alg)
        await _insert_async(conn, box, app.app_id, fresh, "active")
        await _insert_async(conn, box, app.app_id, upcoming, "next", now + NEXT_KEY_DELAY)
        report.activated.append(fresh.kid)
        report.published.append(upcoming.kid)
    return report


KEY_COLUMNS = (
    "kid",
    "alg",
    "state",
    "created_at",
    "activate_after",
    "activated_at",
    "retired_at",
    "publish_until",
    "revoked_at",
)


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every key row of the app, oldest first; no private part (not even sealed)."""
    rows = await conn.fetch(
        f"SELECT {', '.join(KEY_COLUMNS)} FROM signing_keys ORDER BY created_at, kid"
    )
    return [{c: r[c] for c in KEY_COLUMNS} for r in rows]


# --- the in-memory cache (async, for the service) ---------------------------------------


@dataclass(frozen=True)
class AppKeys:
    app_id: str
    published_kids: frozenset[str]
    jwks: bytes  # pre-rendered JSON document
    verifier: Verifier
    expires: float
    # alg -> (kid, sealed private JWK) of the active key; opened on first use.
    sealed: Mapping[str, tuple[str, str]] = field(repr=False)
    box: SecretBox = field(repr=False)
    _signers: dict[str, SigningKey] = field(default_factory=dict, repr=False)

    def signer(self, alg: str) -> SigningKey:
        """The active key for ``alg``, decrypted and parsed once per process.

        Lazily, because loading an RSA private key runs a consistency check of
        ~60 ms: paying it for every app on every cache refresh, for ID tokens
        that most apps never sign, cost whole cores at 1,000 active apps.
        """
        key = self._signers.get(alg)
        if key is None:
            kid, sealed = self.sealed[alg]
            plain = self.box.open(sealed, context=key_context(self.app_id, kid))
            key = self._signers[alg] = SigningKey.from_private_json(plain, cast(Alg, alg))
        return key


_LOAD = (
    "SELECT kid, alg, state, public_jwk, private_sealed FROM signing_keys"
    " WHERE state IN ('next', 'active')"
    " OR (state = 'retired' AND publish_until > now())"
)


class KeyStore:
    # Rotations reach every process by NOTIFY at once; the TTL is only the
    # safety net for a lost notice (and lets expired retired keys drop out).
    def __init__(self, box: SecretBox, *, issuer_for: Any, ttl: float = 300.0) -> None:
        self._box = box
        self._issuer_for = issuer_for
        self._ttl = ttl
        self._cache: dict[str, AppKeys] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def on_change(self, app_id: str | None) -> None:
        if app_id is None:
            self._cache.clear()
        else:
            self._cache.pop(app_id, None)

    def cached(self, app_id: str) -> AppKeys | None:
        keys = self._cache.get(app_id)
        if keys is not None and keys.expires > time.monotonic():
            return keys
        return None

    async def get(self, app: AppRecord, conn: asyncpg.Connection) -> AppKeys:
        """The app's keys; ``conn`` must be in the app's context (router)."""
        keys = self.cached(app.app_id)
        if keys is not None:
            return keys
        lock = self._locks.setdefault(app.app_id, asyncio.Lock())
        async with lock:  # one load per app at a time
            keys = self.cached(app.app_id)
            if keys is None:
                keys = await self._load(app, conn)
                self._cache[app.app_id] = keys
        return keys

    async def _load(self, app: AppRecord, conn: asyncpg.Connection) -> AppKeys:
        rows = await conn.fetch(_LOAD)
        sealed: dict[str, tuple[str, str]] = {}
        public: list[dict[str, Any]] = []
        for row in rows:
            jwk = row["public_jwk"]
            public.append(json.loads(jwk) if isinstance(jwk, str) else dict(jwk))
            if row["state"] == "active":
                sealed[row["alg"]] = (row["kid"], row["private_sealed"])
        document = {"keys": public}
        issuer = self._issuer_for(app.app_id)
        policy = policy_of(app)
        verifier = Verifier(
            issuer, policy.audience_for(issuer), app.app_id, jwks=document, leeway=30
        )
        return AppKeys(
            app_id=app.app_id,
            published_kids=frozenset(str(k["kid"]) for k in public),
            # Through the published model (public members only, oneauth.oauth.models.Jwk):
            # the document cannot drift from /openapi.json, nor carry a private member.
            jwks=msgspec.json.encode(msgspec.convert(document, JwkSet)),
            verifier=verifier,
            expires=time.monotonic() + self._ttl,
            sealed=sealed,
            box=self._box,
        )
