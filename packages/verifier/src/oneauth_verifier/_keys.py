"""Public verification keys: one parsed JWK, ready for the hot path.

Keys are parsed once with jwcrypto (which validates the JWK parameters) and
then kept as ``cryptography`` public-key objects with a pre-bound verify
routine, so a verification costs one signature check and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256 as _sha256
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwk

__all__ = ["SUPPORTED_ALGS", "VerifyKey", "parse_jwk"]

# Asymmetric only: HS* would let anyone holding the public JWKS forge tokens
# (RFC 8725 §2.1, §3.1), and "none" is no signature at all.
SUPPORTED_ALGS = frozenset({"ES256", "EdDSA", "RS256"})

# RFC 7518 §3.3: RSA keys of 2048 bits or larger MUST be used.
_MIN_RSA_BITS = 2048

# Private or symmetric key members (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037
# §2). A public JWKS carrying them comes from a badly broken issuer; refuse
# such keys rather than trust them.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
# DER prefix of DigestInfo for SHA-256 (RFC 8017 §9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

Verify = Callable[[bytes, bytes], None]


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A usable verification key and the one algorithm it may be used with."""

    kid: str
    alg: str
    verify: Verify
    """``verify(signature, signing_input)``; raises on a bad signature."""


def _es256(key: ec.EllipticCurvePublicKey) -> Verify:
    check = key.verify

    def verify(sig: bytes, data: bytes) -> None:
        # JWS carries ECDSA signatures as fixed-width r || s (RFC 7518 §3.4);
        # cryptography wants DER. Any other length is not a JWS signature.
        if len(sig) != 64:
            raise ValueError("bad ES256 signature length")
        der = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
        check(der, data, _ECDSA_SHA256)

    return verify


def _eddsa(key: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) -> Verify:
    # Already (signature, data): no wrapper frame on the hot path.
    return key.verify


def _rs256(key: rsa.RSAPublicKey) -> Verify:
    size = (key.key_size + 7) // 8
    recover = key.recover_data_from_signature

    def verify(sig: bytes, data: bytes) -> None:
        # RSASSA-PKCS1-v1_5 verification, RFC 8017 §8.2.2: OpenSSL checks the
        # signature range and the 00 01 FF..FF 00 padding and returns T; T
        # must then equal DigestInfo(SHA-256, H(data)) byte for byte, which
        # fixes the padding length too. Same result as key.verify(), about
        # 1 µs (7%) cheaper, which matters for RS256, the fastest algorithm.
        # A plain comparison is fine: every input here is public.
        if len(sig) != size:  # step 1: exactly k octets
            raise ValueError("bad RS256 signature length")
        if recover(sig, _PKCS1V15, None) != _SHA256_DIGEST_INFO + _sha256(data).digest():
            raise ValueError("RS256 signature mismatch")

    return verify


def _bind(alg: str, key: object) -> Verify:
    """Return the verify routine if ``key``'s type fits ``alg`` (RFC 8725 §3.1)."""
    if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("ES256 requires a P-256 key")
        return _es256(key)
    if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return _eddsa(key)
    if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError("RSA key shorter than 2048 bits")
        return _rs256(key)
    raise ValueError(f"key type does not fit alg {alg}")


def _infer_alg(kty: object, crv: object) -> str:
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv in ("Ed25519", "Ed448"):
        return "EdDSA"
    if kty == "RSA":
        return "RS256"
    raise ValueError("unsupported key type")


def parse_jwk(data: Mapping[str, Any]) -> VerifyKey:
    """Parse one public JWK (RFC 7517 §4) into a :class:`VerifyKey`.

    Raises ``ValueError`` (with a reason, never key material) if the key
    is unusable for verifying access tokens.
    """
    kid = data.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("key without kid")
    if _PRIVATE_MEMBERS.intersection(data):
        raise ValueError("private key material in public JWKS")
    # RFC 7517 §4.2/§4.3: a key restricted to other uses must not verify JWS.
    use = data.get("use")
    if use is not None and use != "sig":
        raise ValueError("key use is not sig")
    ops = data.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError("key_ops does not allow verify")
    declared = data.get("alg")
    alg = declared if declared is not None else _infer_alg(data.get("kty"), data.get("crv"))
    if alg not in SUPPORTED_ALGS:
        raise ValueError("unsupported key alg")
    try:
        public: object = jwk.JWK(**data).get_op_key("verify")
    except Exception as exc:
        raise ValueError(f"invalid JWK: {type(exc).__name__}") from None
    return VerifyKey(kid=kid, alg=alg, verify=_bind(alg, public))
