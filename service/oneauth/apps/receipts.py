"""Deletion receipts: signed statements that an app was deleted and its data key destroyed (K3).

``apps delete`` issues, in the deleting transaction, a compact JWS (EdDSA,
Ed25519) over::

    {"typ": "oneauth.deletion-receipt", "v": 1, "app_id": ..., "deleted_at": ...,
     "schema": ..., "role": ..., "tables": [{"name": ..., "rows": ...}, ...],
     "dek_id": <the destroyed data key's id, or null for an app that had none>}

signed with the platform's receipt key (``oneauth.receipt_keys``: the private
JWK sealed by the master key, created on first use; ``oneauth apps
receipt-key`` prints the public part so an auditor can keep it apart from the
database). ``oneauth apps verify-deleted`` checks the signature, then that the
schema, the role and the data key are gone and the registry says deleted.

SQL here takes the connection first and runs as the operator role.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from oneauth.secretbox import SecretBox

Conn = psycopg.Connection[tuple[Any, ...]]

RECEIPT_TYPE: Final = "oneauth.deletion-receipt"
JOSE_TYPE: Final = "oneauth-deletion-receipt+jws"


class ReceiptError(Exception):
    """A receipt that does not verify: malformed, unknown key, bad signature, wrong type."""


def _key_context(kid: str) -> str:
    return f"oneauth/receipt-key/{kid}"


def _signing_key(conn: Conn, box: SecretBox) -> tuple[str, jwk.JWK]:
    row = conn.execute(
        "SELECT kid, private_sealed FROM oneauth.receipt_keys ORDER BY created_at DESC, kid LIMIT 1"
    ).fetchone()
    if row is not None:
        kid = str(row[0])
        return kid, jwk.JWK.from_json(box.open(str(row[1]), context=_key_context(kid)).decode())
    kid = "rk-" + secrets.token_hex(8)
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=kid, use="sig", alg="EdDSA")
    conn.execute(
        "INSERT INTO oneauth.receipt_keys (kid, public_jwk, private_sealed) VALUES (%s, %s, %s)",
        (
            kid,
            key.export_public(),
            box.seal(key.export_private().encode(), context=_key_context(kid)),
        ),
    )
    return kid, key


def public_keys(conn: Conn, box: SecretBox | None = None) -> list[dict[str, Any]]:
    """Every receipt key's public JWK, newest first (with ``box``: one is created if none)."""
    if box is not None:
        _signing_key(conn, box)
    rows = conn.execute(
        "SELECT public_jwk FROM oneauth.receipt_keys ORDER BY created_at DESC, kid"
    ).fetchall()
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


def issue(conn: Conn, box: SecretBox, claims: dict[str, Any]) -> str:
    kid, key = _signing_key(conn, box)
    body = {"typ": RECEIPT_TYPE, "v": 1, **claims}
    token = jws.JWS(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    token.add_signature(
        key, alg="EdDSA", protected=json.dumps({"alg": "EdDSA", "kid": kid, "typ": JOSE_TYPE})
    )
    return str(token.serialize(compact=True))


def store(conn: Conn, app_id: str, receipt: str) -> None:
    conn.execute(
        "INSERT INTO oneauth.deletion_receipts (app_id, receipt) VALUES (%s, %s)"
        " ON CONFLICT (app_id) DO NOTHING",
        (app_id, receipt),
    )


def stored(conn: Conn, app_id: str) -> str | None:
    row = conn.execute(
        "SELECT receipt FROM oneauth.deletion_receipts WHERE app_id = %s", (app_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def verify(receipt: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
    """The receipt's claims if its signature verifies under one of ``keys``."""
    token = jws.JWS()
    try:
        token.deserialize(receipt.strip())
        header = token.jose_header
    except (JWException, ValueError, TypeError):
        raise ReceiptError("not a compact JWS") from None
    if not isinstance(header, dict) or header.get("alg") != "EdDSA":
        raise ReceiptError("a receipt is signed with EdDSA")
    if header.get("typ") != JOSE_TYPE:
        raise ReceiptError("not a deletion receipt (typ)")
    kid = header.get("kid")
    found = [k for k in keys if k.get("kid") == kid]
    if not found:
        raise ReceiptError(f"signed with an unknown receipt key {kid!r}")
    try:
        token.verify(jwk.JWK(**found[0]), alg="EdDSA")
    except (JWException, ValueError, TypeError):
        raise ReceiptError("the signature does not verify (the receipt was altered)") from None
    try:
        claims = json.loads(token.payload)
    except ValueError:
        raise ReceiptError("the payload is not JSON") from None
    if not isinstance(claims, dict) or claims.get("typ") != RECEIPT_TYPE:
        raise ReceiptError("not a deletion receipt (payload typ)")
    return claims


@dataclass(frozen=True)
class DeletionCheck:
    claims: dict[str, Any]
    checks: dict[str, bool]

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


def check_deleted(conn: Conn, claims: dict[str, Any]) -> DeletionCheck:
    """Is what the (verified) receipt says still true of this database?"""
    app_id = str(claims.get("app_id"))
    row = conn.execute(
        "SELECT"
        " (SELECT status FROM oneauth.apps WHERE app_id = %s),"
        " EXISTS (SELECT FROM pg_namespace WHERE nspname = %s),"
        " EXISTS (SELECT FROM pg_roles WHERE rolname = %s),"
        " EXISTS (SELECT FROM oneauth.app_keys WHERE app_id = %s OR dek_id = %s)",
        (app_id, claims.get("schema"), claims.get("role"), app_id, claims.get("dek_id")),
    ).fetchone()
    assert row is not None
    return DeletionCheck(
        claims,
        {
            "signature": True,
            "registry_says_deleted": row[0] == "deleted",
            "schema_gone": not row[1],
            "role_gone": not row[2],
            "data_key_destroyed": not row[3],
        },
    )


def rewrap_keys(conn: Conn, box: SecretBox) -> int:
    """Reseal receipt private keys under the current master key (master-key rotation)."""
    n = 0
    with conn.transaction():
        rows = conn.execute(
            "SELECT kid, private_sealed FROM oneauth.receipt_keys FOR UPDATE"
        ).fetchall()
        for kid, sealed in rows:
            if not box.needs_reseal(sealed):
                continue
            plain = box.open(sealed, context=_key_context(kid))
            conn.execute(
                "UPDATE oneauth.receipt_keys SET private_sealed = %s WHERE kid = %s",
                (box.seal(plain, context=_key_context(kid)), kid),
            )
            n += 1
    return n
