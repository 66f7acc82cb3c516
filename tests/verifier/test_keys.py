"""JWK parsing rules and the hot-path signature routines."""

from __future__ import annotations

import random
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk

from oneauth.verifier import JWKSUnavailable
from oneauth_verifier._jwks import parse_jwks
from oneauth_verifier._keys import parse_jwk


def _public(**generate: Any) -> dict[str, Any]:
    key = jwk.JWK.generate(**generate)
    public: dict[str, Any] = key.export_public(as_dict=True)
    public["kid"] = key.thumbprint()
    return public


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def test_alg_is_inferred_or_declared() -> None:
    assert parse_jwk(_public(kty="EC", crv="P-256")).alg == "ES256"
    assert parse_jwk(_public(kty="OKP", crv="Ed25519")).alg == "EdDSA"
    assert parse_jwk({**_public(kty="OKP", crv="Ed25519"), "alg": "EdDSA"}).alg == "EdDSA"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ({"kty": "EC", "crv": "P-256"}, "kid"),
        ({"kid": "", "kty": "EC"}, "kid"),
        ({"kid": "k", "kty": "oct", "k": "c2VjcmV0"}, "private"),  # HMAC secret
        ({"kid": "k", "kty": "EC", "crv": "P-384"}, "unsupported"),
        ({"kid": "k", "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "invalid JWK"),
    ],
)
def test_unusable_keys(key: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_jwk(key)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"use": "enc"}, "use"),
        ({"key_ops": ["encrypt"]}, "key_ops"),
        ({"key_ops": "verify"}, "key_ops"),
        ({"alg": "RS256"}, "fit"),
        ({"alg": "HS256"}, "unsupported"),
        ({"alg": "ES384"}, "unsupported"),
        ({"d": "AAAA"}, "private"),
    ],
)
def test_key_restrictions(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_jwk({**_public(kty="EC", crv="P-256"), **change})


def test_short_rsa_keys_are_refused() -> None:
    small = rsa.generate_private_key(65537, 1024).public_key()  # noqa: S505 - the point
    data = jwk.JWK.from_pyca(small).export_public(as_dict=True)
    with pytest.raises(ValueError, match="2048"):
        parse_jwk({**data, "kid": "small"})


def test_parse_jwks_skips_bad_keys_and_duplicates() -> None:
    good, dup = _public(kty="EC", crv="P-256"), _public(kty="OKP", crv="Ed25519")
    keys = parse_jwks({"keys": [good, dup, {**dup}, "junk", {**good, "kid": "x", "use": "enc"}]})
    assert list(keys) == [good["kid"]]
    with pytest.raises(JWKSUnavailable):
        parse_jwks({"keys": {"a": 1}})


def _rs256_verifier(key: rsa.RSAPrivateKey) -> Any:
    data = jwk.JWK.from_pyca(key.public_key()).export_public(as_dict=True)
    return parse_jwk({**data, "kid": "r"}).verify


def _reference_accepts(key: rsa.RSAPrivateKey, sig: bytes, data: bytes) -> bool:
    try:
        key.public_key().verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _ours_accepts(verify: Any, sig: bytes, data: bytes) -> bool:
    try:
        verify(sig, data)
    except Exception:
        return False
    return True


def test_rs256_matches_cryptography_verify(rsa_key: rsa.RSAPrivateKey) -> None:
    # The hot path recovers the DigestInfo instead of calling verify(); it
    # must accept and refuse exactly the same signatures.
    verify = _rs256_verifier(rsa_key)
    rng = random.Random(7)
    data = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ"
    good = rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    sha1 = rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    sha512 = rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA512())
    pss = rsa_key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    other = rsa.generate_private_key(65537, 2048).sign(data, padding.PKCS1v15(), hashes.SHA256())
    cases = [
        (good, data),
        (good, data + b"x"),
        (good[1:], data),
        (b"\x00" + good, data),
        (good[:-1], data),
        (b"", data),
        (sha1, data),
        (sha512, data),
        (pss, data),
        (other, data),
        (b"\xff" * 256, data),
        (b"\x00" * 256, data),
    ]
    for _ in range(200):
        flipped = bytearray(good)
        bit = rng.randrange(len(flipped) * 8)
        flipped[bit // 8] ^= 1 << (bit % 8)
        cases.append((bytes(flipped), data))
    for sig, signed in cases:
        assert _ours_accepts(verify, sig, signed) == _reference_accepts(rsa_key, sig, signed)
    assert _ours_accepts(verify, good, data)


def test_rs256_rejects_signature_with_leading_zero_stripped(rsa_key: rsa.RSAPrivateKey) -> None:
    # RFC 8017 §8.2.2 step 1: the signature must be exactly k octets.
    verify = _rs256_verifier(rsa_key)
    for i in range(2000):
        data = f"token-{i}".encode()
        sig = rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if sig[0] == 0:
            assert _ours_accepts(verify, sig, data)
            assert not _ours_accepts(verify, sig[1:], data)
            return
    pytest.fail("no signature with a leading zero byte found")


def test_es256_checks_raw_signature_length() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    data = jwk.JWK.from_pyca(private.public_key()).export_public(as_dict=True)
    verify = parse_jwk({**data, "kid": "e"}).verify
    der = private.sign(b"msg", ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32) + s.to_bytes(32)
    verify(raw, b"msg")
    for bad in (der, raw[:-1], raw + b"\x00", b""):
        with pytest.raises(ValueError, match="length"):
            verify(bad, b"msg")
    with pytest.raises(InvalidSignature):
        verify(raw, b"other")
