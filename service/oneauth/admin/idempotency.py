"""Idempotency keys on the admin API's create calls (issue 15).

A client sends ``Idempotency-Key: <1..255 printable ASCII>`` with a POST that
creates. The first request with a key creates and its answer is stored, keyed
by the acting client (or operator) and the key, with a fingerprint of the
request (method, path, body). Within 24 hours:

- the same key with the same request replays the stored answer, with
  ``Idempotency-Replayed: true``; nothing is created again;
- the same key with another request is 422 ``idempotency_key_reused``;
- two requests with one key at once: the row is claimed in the create's own
  transaction, so the second waits on it and then replays the first's answer
  (or creates, if the first failed and rolled back). If it cannot get the row
  within ``LOCK_WAIT`` it answers 409 ``idempotency_in_progress``.

The stored answer is sealed (:class:`~oneauth.secretbox.SecretBox`, the app and
key in the associated data): a create may answer a secret that is shown once.
The guard (:func:`oneauth.admin.guard.admin_operation`) does all of this for a
route declared ``Operation(idempotent=True)``; views do nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from oneauth.db.savepoint import savepoint
from oneauth.errors import ApiError, Conflict, ValidationFailed
from oneauth.secretbox import SecretBox

__all__ = [
    "HEADER",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "Stored",
    "claim",
    "fingerprint",
    "key_of",
    "store",
]

HEADER = "idempotency-key"
REPLAYED = "idempotency-replayed"
TTL = "24 hours"
LOCK_WAIT = "10s"


class IdempotencyKeyReused(ApiError):
    code, status, title = (
        "idempotency_key_reused",
        422,
        "This Idempotency-Key was used for a different request",
    )


class IdempotencyInProgress(Conflict):
    code, status, title = (
        "idempotency_in_progress",
        409,
        "A request with this Idempotency-Key is still in progress; retry shortly",
    )


def key_of(request: Request) -> str | None:
    """The request's Idempotency-Key, None when absent; 422 when malformed."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    key = values[0]
    if len(values) > 1 or not 1 <= len(key) <= 255 or not all(0x20 < ord(c) < 0x7F for c in key):
        raise ValidationFailed(
            "Idempotency-Key must be one header of 1 to 255 printable ASCII characters",
            extra={"field": "Idempotency-Key"},
        )
    return key


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode("utf-8", "surrogatepass"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


@dataclass(frozen=True, slots=True)
class Stored:
    """The first request's answer, to replay."""

    status: int
    media_type: str | None
    body: bytes

    def response(self) -> Response:
        return Response(
            self.body,
            status_code=self.status,
            media_type=self.media_type,
            headers={REPLAYED: "true", "cache-control": "no-store"},
        )


# Takes the key, or an expired row of it (older than TTL); no row back when a live
# row holds it (then it is read below). Prunes a few expired rows of any key first:
# create calls are rare, the index on created_at makes it cheap.
_PRUNE = (
    "DELETE FROM admin_idempotency WHERE ctid = ANY(ARRAY(SELECT ctid FROM admin_idempotency"
    f" WHERE created_at < now() - interval '{TTL}' LIMIT 100))"
)
_CLAIM = (
    "INSERT INTO admin_idempotency (actor_type, actor_id, key, fingerprint)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (actor_type, actor_id, key) DO UPDATE"
    " SET fingerprint = EXCLUDED.fingerprint, created_at = now(), response_status = NULL,"
    " response_type = NULL, response_sealed = NULL"
    f" WHERE admin_idempotency.created_at < now() - interval '{TTL}' RETURNING 1"
)
_READ = (
    "SELECT fingerprint, response_status, response_type, response_sealed"
    " FROM admin_idempotency WHERE actor_type = $1 AND actor_id = $2 AND key = $3"
)
_STORE = (
    "UPDATE admin_idempotency SET response_status = $4, response_type = $5,"
    " response_sealed = $6 WHERE actor_type = $1 AND actor_id = $2 AND key = $3"
)


def _context(app_id: str, actor_type: str, actor_id: str, key: str) -> str:
    return f"oneauth/admin-idempotency|{app_id}|{actor_type}|{actor_id}|{key}"


async def claim(
    conn: asyncpg.Connection,
    box: SecretBox,
    *,
    app_id: str,
    actor_type: str,
    actor_id: str,
    key: str,
    fingerprint: bytes,
) -> Stored | None:
    """Take ``key`` for this request (None: go ahead and create, then :func:`store`),
    or the stored answer to replay. Raises 422 for another request's key, 409 when
    the first request holds it longer than ``LOCK_WAIT``."""
    await conn.execute(_PRUNE)
    # A concurrent first request holds the row until it commits: wait, bounded.
    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
    try:
        async with savepoint(conn):  # the timeout must not abort the unit
            taken = await conn.fetchval(_CLAIM, actor_type, actor_id, key, fingerprint)
    except asyncpg.LockNotAvailableError:
        raise IdempotencyInProgress() from None
    finally:
        await conn.execute("SET LOCAL lock_timeout = DEFAULT")
    if taken is not None:
        return None
    row = await conn.fetchrow(_READ, actor_type, actor_id, key)
    if row is None or bytes(row["fingerprint"]) != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request in the last 24 hours;"
            " use a new key for a new request"
        )
    if row["response_status"] is None:  # cannot happen: claim and answer commit together
        raise IdempotencyInProgress()
    context = _context(app_id, actor_type, actor_id, key)
    return Stored(
        status=row["response_status"],
        media_type=row["response_type"],
        body=box.open(row["response_sealed"], context=context),
    )


async def store(
    conn: asyncpg.Connection,
    box: SecretBox,
    response: Response,
    *,
    app_id: str,
    actor_type: str,
    actor_id: str,
    key: str,
) -> None:
    """Keep ``response`` for replays of ``key``, in the create's transaction."""
    sealed = box.seal(bytes(response.body), context=_context(app_id, actor_type, actor_id, key))
    await conn.execute(
        _STORE,
        actor_type,
        actor_id,
        key,
        response.status_code,
        response.media_type or response.headers.get("content-type"),
        sealed,
    )
