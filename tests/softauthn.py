"""A software WebAuthn authenticator and client for the tests: real P-256 keys,
real CBOR attestation objects (fmt "none") and real ECDSA assertions, in the
JSON forms browsers' ``PublicKeyCredential.toJSON()`` produce.

It plays both the authenticator (WebAuthn 6.3.2, 6.3.3) and the client (5.1.3,
5.1.4: clientDataJSON with the page's origin), so a test can say which origin
the "page" was on and what the authenticator claims (UV, BE/BS, counter).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Passkey:
    """One credential held by the authenticator."""

    rp_id: str
    user_handle: bytes
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    sign_count: int = 0
    counting: bool = True  # False: an authenticator that keeps no counter (synced)
    backup_eligible: bool = False

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


class SoftAuthenticator:
    def __init__(self, *, user_verifying: bool = True, synced: bool = False) -> None:
        self.user_verifying = user_verifying
        self.synced = synced
        self.aaguid = secrets.token_bytes(16)
        self.passkeys: list[Passkey] = []

    # -- registration -------------------------------------------------------

    def create(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        """``navigator.credentials.create({publicKey: options})`` then ``toJSON()``."""
        rp_id = options["rp"]["id"]
        excluded = {c["id"] for c in options.get("excludeCredentials", [])}
        if any(b64u(p.credential_id) in excluded for p in self.passkeys if p.rp_id == rp_id):
            raise InvalidStateError("this authenticator already holds a credential of that list")
        passkey = Passkey(
            rp_id=rp_id,
            user_handle=unb64u(options["user"]["id"]),
            counting=not self.synced,
            backup_eligible=self.synced,
        )
        self.passkeys.append(passkey)
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attested = self.aaguid + struct.pack(">H", len(passkey.credential_id))
        attested += passkey.credential_id + passkey.cose_key()
        auth_data = self._auth_data(rp_id, passkey, AT) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64u(passkey.credential_id),
            "rawId": b64u(passkey.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64u(client_data),
                "attestationObject": b64u(attestation),
                "transports": ["internal", "hybrid"],
            },
        }

    # -- authentication -----------------------------------------------------

    def get(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        passkey: Passkey | None = None,
        rp_id: str | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.get({publicKey: options})`` then ``toJSON()``.

        ``passkey``: the one the user picks (else the first that fits).
        ``rp_id``: what the authenticator signs for (else the options' rpId)."""
        rp_id = rp_id or options["rpId"]
        allowed = {c["id"] for c in options.get("allowCredentials", [])}
        if passkey is None:
            fits = [
                p
                for p in self.passkeys
                if p.rp_id == rp_id and (not allowed or b64u(p.credential_id) in allowed)
            ]
            if not fits:
                raise NotAllowedError("no credential of this authenticator fits")
            passkey = fits[0]
        return self.assert_with(passkey, options["challenge"], origin, rp_id=rp_id)

    def assert_with(
        self,
        passkey: Passkey,
        challenge: str,
        origin: str,
        *,
        rp_id: str | None = None,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        if passkey.counting:
            passkey.sign_count += 1
        if sign_count is not None:
            passkey.sign_count = sign_count
        client_data = self._client_data("webauthn.get", challenge, origin)
        auth_data = self._auth_data(rp_id or passkey.rp_id, passkey, 0)
        signature = passkey.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64u(passkey.credential_id),
            "rawId": b64u(passkey.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64u(client_data),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(signature),
                "userHandle": b64u(passkey.user_handle),
            },
        }

    # -- pieces -------------------------------------------------------------

    def _auth_data(self, rp_id: str, passkey: Passkey, extra_flags: int) -> bytes:
        flags = UP | extra_flags
        if self.user_verifying:
            flags |= UV
        if passkey.backup_eligible:
            flags |= BE | BS
        counter = passkey.sign_count if passkey.counting else 0
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", counter)

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()


class InvalidStateError(Exception):
    pass


class NotAllowedError(Exception):
    pass
