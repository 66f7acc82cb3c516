"""Signed checkpoints of an app's audit chain (A2).

A checkpoint is a compact JWS (header ``{"alg", "typ": "oneauth-audit-checkpoint+jwt",
"kid"}``) signed with the app's current signing key (``tokens.keystore``), whose
claims are::

    {"iss": <the app's issuer>, "app_id": <app>, "seq": n, "kind": "periodic"|"prune",
     "audit_id": <head row id>, "row_hash": <hex of its row_hash>,
     "pruned_through": <id or null>, "prev": <hex SHA-256 of checkpoint n-1's JWS or null>,
     "iat": <unix time>}

``prev`` chains the checkpoints themselves: a checkpoint removed from the middle
breaks the sequence. Rows live in ``oneauth.audit_checkpoints`` (control schema,
service role may insert and read); ``oneauth audit checkpoints --app A --json``
exports them with their public keys, for keeping outside the database.

Which keys count: the row carries the public JWK and a ``key_proof``, the kid
sealed with the master key under the context ``app:<app_id>/audit-checkpoint-key``.
A database writer (even a superuser) can insert rows but cannot seal, so a
checkpoint signed with a key of their own (or copied from another app) does not
verify. Retired signing keys may leave ``signing_keys``; the proof keeps their
checkpoints verifiable.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS, InvalidJWSSignature

from oneauth.auditchain.chain import Anchor, Problem
from oneauth.secretbox import SecretBox, SecretBoxError
from oneauth.tokens.jwt import sign_jwt
from oneauth.tokens.keys import SigningKey

TYP = "oneauth-audit-checkpoint+jwt"
KINDS = ("periodic", "prune")

COLUMNS = (
    "app_id, seq, kind, audit_id, row_hash, pruned_through, jws, kid, public_jwk, key_proof,"
    " created_at"
)


def key_proof_context(app_id: str) -> str:
    return f"app:{app_id}/audit-checkpoint-key"


def jws_digest(jws: str) -> str:
    return hashlib.sha256(jws.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Draft:
    """A signed checkpoint, ready for insertion."""

    app_id: str
    seq: int
    kind: str
    audit_id: int
    row_hash: bytes
    pruned_through: int | None
    jws: str
    kid: str
    public_jwk: dict[str, Any]
    key_proof: str


def sign(
    key: SigningKey,
    box: SecretBox,
    *,
    app_id: str,
    issuer: str,
    seq: int,
    kind: str,
    audit_id: int,
    row_hash: bytes,
    pruned_through: int | None,
    prev_jws: str | None,
) -> Draft:
    claims = {
        "iss": issuer,
        "app_id": app_id,
        "seq": seq,
        "kind": kind,
        "audit_id": audit_id,
        "row_hash": row_hash.hex(),
        "pruned_through": pruned_through,
        "prev": None if prev_jws is None else jws_digest(prev_jws),
        "iat": int(time.time()),
    }
    return Draft(
        app_id=app_id,
        seq=seq,
        kind=kind,
        audit_id=audit_id,
        row_hash=row_hash,
        pruned_through=pruned_through,
        jws=sign_jwt(key, claims, typ=TYP),
        kid=key.kid,
        public_jwk=key.public_jwk_dict,
        key_proof=box.seal(key.kid.encode("ascii"), context=key_proof_context(app_id)),
    )


def export_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint row as exported (``oneauth audit checkpoints --json``, the admin API)."""
    jwk = row["public_jwk"]
    created = row["created_at"]
    return {
        "app_id": row["app_id"],
        "seq": int(row["seq"]),
        "kind": row["kind"],
        "audit_id": int(row["audit_id"]),
        "row_hash": bytes(row["row_hash"]).hex(),
        "pruned_through": row["pruned_through"],
        "jws": row["jws"],
        "kid": row["kid"],
        "public_jwk": json.loads(jwk) if isinstance(jwk, str) else dict(jwk),
        "key_proof": row["key_proof"],
        "created_at": created.isoformat() if hasattr(created, "isoformat") else str(created),
    }


def verify_all(
    exported: list[dict[str, Any]], *, app_id: str, box: SecretBox | None
) -> tuple[list[Anchor], list[Problem]]:
    """Check every checkpoint of an app (as ``export_row`` gives them), in seq order.

    Returns the anchors the chain must match and the problems found. With
    ``box`` None (an auditor without the master key) the key proof is not
    checked: the caller must compare the kids with the app's published keys.
    """
    anchors: list[Anchor] = []
    problems: list[Problem] = []
    prev_jws: str | None = None
    expected = 1
    for cp in sorted(exported, key=lambda c: int(c["seq"])):
        seq = int(cp["seq"])
        where = f"checkpoint #{seq}"
        claims, why = _verified_claims(cp, app_id=app_id, box=box)
        if claims is None:
            problems.append(Problem("checkpoint", int(cp["audit_id"]), f"{where}: {why}"))
        elif seq != expected:
            problems.append(
                Problem(
                    "checkpoint",
                    claims["audit_id"],
                    f"{where}: checkpoints #{expected} to #{seq - 1} are missing",
                )
            )
        elif claims["prev"] != (None if prev_jws is None else jws_digest(prev_jws)):
            problems.append(
                Problem(
                    "checkpoint",
                    claims["audit_id"],
                    f"{where}: does not follow checkpoint #{seq - 1} (its prev differs)",
                )
            )
        if claims is not None:
            anchors.append(
                Anchor(
                    seq=seq,
                    kind=str(claims["kind"]),
                    audit_id=int(claims["audit_id"]),
                    row_hash=bytes.fromhex(str(claims["row_hash"])),
                    pruned_through=claims["pruned_through"],
                    created_at=str(cp.get("created_at", "")),
                )
            )
        prev_jws = str(cp["jws"])
        expected = seq + 1
    return anchors, problems


def merge_exported(
    stored: list[dict[str, Any]], kept: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The database's checkpoints checked against a copy kept elsewhere (an export).

    A checkpoint in the copy must still be in the database, unchanged: deleting
    the newest checkpoints (which leaves no gap) or replacing one is detected.
    """
    problems: list[Problem] = []
    by_seq = {int(c["seq"]): c for c in stored}
    for cp in kept:
        seq = int(cp["seq"])
        mine = by_seq.get(seq)
        if mine is None:
            problems.append(
                Problem(
                    "checkpoint",
                    int(cp["audit_id"]),
                    f"checkpoint #{seq} of the kept copy is missing from the database",
                )
            )
            by_seq[seq] = cp
        elif mine["jws"] != cp["jws"]:
            problems.append(
                Problem(
                    "checkpoint",
                    int(cp["audit_id"]),
                    f"checkpoint #{seq} in the database differs from the kept copy",
                )
            )
            by_seq[seq] = cp  # the kept copy is the one to trust
    return [by_seq[s] for s in sorted(by_seq)], problems


def _verified_claims(
    cp: Mapping[str, Any], *, app_id: str, box: SecretBox | None
) -> tuple[dict[str, Any] | None, str]:
    kid = str(cp.get("kid", ""))
    try:
        jwk = JWK(**cp["public_jwk"])
        if jwk.has_private or jwk.thumbprint() != kid:
            return None, "its public key does not match its kid"
    except Exception:
        return None, "its public key is not a valid JWK"
    if box is not None:
        try:
            proved = box.open(str(cp["key_proof"]), context=key_proof_context(app_id))
        except SecretBoxError:
            return None, f"key {kid} is not vouched for as a signing key of app {app_id!r}"
        if proved.decode("ascii", "replace") != kid:
            return None, f"key {kid} is not vouched for as a signing key of app {app_id!r}"
    token = JWS()
    try:
        token.deserialize(str(cp["jws"]))
        header = token.jose_header
        if header.get("typ") != TYP or header.get("kid") != kid:
            return None, "not an audit checkpoint (typ/kid)"
        token.verify(jwk, alg=str(header.get("alg")))
        claims = json.loads(token.payload)
    except (InvalidJWSSignature, ValueError, KeyError, TypeError):
        return None, "its signature does not verify"
    except Exception:
        return None, "its signature does not verify"
    if not isinstance(claims, dict):
        return None, "its claims are not an object"
    # The app is pinned, not the issuer URL: a new public URL must not orphan
    # the checkpoints signed before it.
    if claims.get("app_id") != app_id:
        return None, f"signed for app {claims.get('app_id')!r}, not {app_id!r}"
    if claims.get("seq") != int(cp["seq"]) or claims.get("kind") not in KINDS:
        return None, "its signed seq or kind differs from the stored row"
    if not isinstance(claims.get("audit_id"), int) or not isinstance(claims.get("row_hash"), str):
        return None, "its signed head is malformed"
    try:
        if len(bytes.fromhex(claims["row_hash"])) != 32:
            return None, "its signed head is malformed"
    except ValueError:
        return None, "its signed head is malformed"
    pruned = claims.get("pruned_through")
    if pruned is not None and not isinstance(pruned, int):
        return None, "its signed pruned_through is malformed"
    return claims, ""
