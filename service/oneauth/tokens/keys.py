"""Per-app asymmetric signing keys (SECURITY.md T3).

Keys are generated and exported with jwcrypto; the ``kid`` is the key's RFC 7638 JWK
thumbprint (SHA-256, base64url), so it is derived from the public key itself and the
same key always gets the same id. Signing itself goes straight to the ``cryptography``
private key object, cached at load time (see ``oneauth.tokens.jwt`` for the numbers).

Algorithms (RFC 7518 section 3, RFC 8037):

* ``ES256``: ECDSA P-256 with SHA-256; small and fast, the one to prefer.
* ``EdDSA``: Ed25519.
* ``RS256``: RSA PKCS#1 v1.5 with SHA-256, 2048-bit modulus. 2048 bits gives 112-bit
  security, acceptable to NIST SP 800-57 through 2030 and the minimum FAPI 2.0 demands;
  RS256 exists only for relying parties that cannot verify ES256, and per-app keys are
  rotated, so 3072 bits (~1.7k signatures/s vs ~4.7k/s for 2048 on our 2-core machines)
  would cost ~2.8x the signing time for no practical gain here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, cast, get_args

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto.jwk import JWK

__all__ = [
    "PRIVATE_JWK_MEMBERS",
    "RSA_KEY_BITS",
    "SUPPORTED_ALGS",
    "Alg",
    "SigningKey",
    "generate_signing_key",
]

Alg = Literal["ES256", "EdDSA", "RS256"]
SUPPORTED_ALGS: Final[tuple[Alg, ...]] = get_args(Alg)
RSA_KEY_BITS: Final = 2048
# RFC 7518 section 6 and RFC 8037 section 2: members that carry private key material.
PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

Signer = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private signing key of one app. Equality and hashing go by ``kid`` and ``alg``.

    Build with :func:`generate_signing_key` or :meth:`from_private_json`, not directly.
    """

    kid: str
    alg: Alg
    private_jwk: JWK = field(repr=False, compare=False)
    _public: Mapping[str, Any] = field(repr=False, compare=False)
    _signer: Signer = field(repr=False, compare=False)

    @property
    def public_jwk_dict(self) -> dict[str, Any]:
        """The public JWK for a JWKS document: key members plus kid, alg and use="sig"."""
        return dict(self._public)

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature over ``signing_input`` in RFC 7518 encoding (raw r||s for ES256)."""
        return self._signer(signing_input)

    def export_private_json(self) -> bytes:
        """The private JWK as JSON bytes, for sealing with SecretBox before storage."""
        exported: str = self.private_jwk.export_private()
        return exported.encode("utf-8")

    @classmethod
    def from_private_json(cls, data: bytes, alg: Alg) -> SigningKey:
        """Load a key stored by :meth:`export_private_json`; check it fits ``alg``."""
        try:
            members = json.loads(data)
            jwk = JWK(**members)
        except Exception as exc:  # jwcrypto raises a zoo of types for bad input
            raise ValueError("not a valid JWK") from exc
        return cls.from_jwk(jwk, alg)

    @classmethod
    def from_jwk(cls, jwk: JWK, alg: Alg) -> SigningKey:
        """Wrap a private jwcrypto JWK, validating it against ``alg``."""
        if alg not in SUPPORTED_ALGS:
            raise ValueError(f"unsupported alg {alg!r}")
        if not jwk.has_private:
            raise ValueError("a signing key needs the private part")
        # Derived (and, for RSA, consistency-checked: ~60 ms) once, here; jwcrypto
        # would repeat that for every JWK object and every signature.
        key = jwk.get_op_key("sign")
        _check_key_type(jwk, alg, key)
        kid = cast(str, jwk.thumbprint())
        if jwk.get("kid", kid) != kid:
            raise ValueError("stored kid does not match the key's RFC 7638 thumbprint")
        if jwk.get("alg", alg) != alg:
            raise ValueError("stored alg does not match the requested alg")
        members = {k: v for k, v in jwk.export_private(as_dict=True).items() if k != "key_ops"}
        members.update(kid=kid, alg=alg, use="sig")
        full = JWK(**members)
        public = dict(full.export_public(as_dict=True))
        leaked = PRIVATE_JWK_MEMBERS & public.keys()
        if leaked:  # never publish private members, whatever a library version does
            raise RuntimeError(f"public JWK export contains private members {sorted(leaked)}")
        return cls(
            kid=kid,
            alg=alg,
            private_jwk=full,
            _public=MappingProxyType(public),
            _signer=_make_signer(key, alg),
        )


def generate_signing_key(alg: Alg) -> SigningKey:
    """Generate a fresh key for ``alg`` (P-256, Ed25519 or RSA-2048)."""
    if alg == "ES256":
        jwk = JWK.generate(kty="EC", crv="P-256")
    elif alg == "EdDSA":
        jwk = JWK.generate(kty="OKP", crv="Ed25519")
    elif alg == "RS256":
        jwk = JWK.generate(kty="RSA", size=RSA_KEY_BITS)
    else:
        raise ValueError(f"unsupported alg {alg!r}")
    return SigningKey.from_jwk(jwk, alg)


def _check_key_type(jwk: JWK, alg: Alg, key: object) -> None:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if alg == "ES256" and (kty, crv) != ("EC", "P-256"):
        raise ValueError("ES256 needs an EC P-256 key")
    if alg == "EdDSA" and (kty, crv) != ("OKP", "Ed25519"):
        raise ValueError("EdDSA needs an OKP Ed25519 key")
    if alg == "RS256":
        if kty != "RSA":
            raise ValueError("RS256 needs an RSA key")
        bits = cast(rsa.RSAPrivateKey, key).key_size
        if bits < RSA_KEY_BITS:
            raise ValueError(f"RS256 needs an RSA key of >= {RSA_KEY_BITS} bits, got {bits}")


def _make_signer(key: object, alg: Alg) -> Signer:
    if alg == "ES256":
        ec_key = cast(ec.EllipticCurvePrivateKey, key)
        algorithm = ec.ECDSA(hashes.SHA256())

        def sign_es256(data: bytes) -> bytes:
            # cryptography returns DER; JWS wants the fixed-width r || s (RFC 7518 3.4).
            r, s = decode_dss_signature(ec_key.sign(data, algorithm))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return sign_es256
    if alg == "EdDSA":
        return cast(Ed25519PrivateKey, key).sign
    rsa_key = cast(rsa.RSAPrivateKey, key)
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

    def sign_rs256(data: bytes) -> bytes:
        return rsa_key.sign(data, pkcs1, sha256)

    return sign_rs256
