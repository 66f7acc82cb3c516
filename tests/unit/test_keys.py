"""Per-app signing keys (T3) and compact JWS signing, checked against jwcrypto."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from jwcrypto import jwk as jjwk
from jwcrypto import jws as jjws
from jwcrypto import jwt as jjwt

from oneauth.secretbox import SecretBox
from oneauth.tokens.jwt import at_hash, c_hash, sign_jwt
from oneauth.tokens.keys import (
    PRIVATE_JWK_MEMBERS,
    SUPPORTED_ALGS,
    Alg,
    SigningKey,
    generate_signing_key,
)

CLAIMS: dict[str, Any] = {
    "iss": "https://auth.example.com/apps/shop",
    "sub": "user-1",
    "aud": "shop-web",
    "iat": 1_732_740_000,
    "exp": 4_102_444_800,
    "name": "Zoë Ünïcødé",
    "amr": ["pwd"],
}


def b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.fixture(scope="module", params=SUPPORTED_ALGS)
def key(request: pytest.FixtureRequest) -> SigningKey:
    alg: Alg = request.param
    return generate_signing_key(alg)


def test_supported_algs() -> None:
    assert SUPPORTED_ALGS == ("ES256", "EdDSA", "RS256")


def test_key_types(key: SigningKey) -> None:
    pub = key.public_jwk_dict
    expected = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519"), "RS256": ("RSA", None)}
    assert (pub["kty"], pub.get("crv")) == expected[key.alg]
    if key.alg == "RS256":
        assert len(b64d(pub["n"])) * 8 == 2048


def test_kid_is_rfc7638_thumbprint(key: SigningKey) -> None:
    pub = key.public_jwk_dict
    # Recompute by hand (RFC 7638 section 3): required members, sorted, no whitespace.
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
        "RSA": ("e", "kty", "n"),
    }
    canonical = json.dumps(
        {m: pub[m] for m in required[pub["kty"]]}, separators=(",", ":"), sort_keys=True
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert key.kid == expected.rstrip(b"=").decode()
    assert key.kid == jjwk.JWK(**pub).thumbprint()


def test_public_jwk_has_no_private_members(key: SigningKey) -> None:
    pub = key.public_jwk_dict
    assert not PRIVATE_JWK_MEMBERS & pub.keys()
    assert {"d", "p", "q", "dp", "dq", "qi"}.isdisjoint(pub)
    assert pub["kid"] == key.kid
    assert pub["alg"] == key.alg
    assert pub["use"] == "sig"
    # The private export does have them, so the check above is meaningful.
    private = json.loads(key.export_private_json())
    assert "d" in private


def test_public_jwk_dict_is_a_copy(key: SigningKey) -> None:
    key.public_jwk_dict["d"] = "oops"
    assert "d" not in key.public_jwk_dict


def test_repr_hides_private_key(key: SigningKey) -> None:
    private = json.loads(key.export_private_json())
    assert private["d"] not in repr(key)
    assert key.kid in repr(key)


def test_private_json_roundtrip_through_secretbox(key: SigningKey) -> None:
    box = SecretBox({"k1": bytes(32)}, "k1")
    context = f"app:shop/signing-key/{key.kid}"
    sealed = box.seal(key.export_private_json(), context=context)
    loaded = SigningKey.from_private_json(box.open(sealed, context=context), key.alg)
    assert loaded == key
    assert loaded.public_jwk_dict == key.public_jwk_dict
    token = sign_jwt(loaded, CLAIMS, typ="JWT")
    jjwt.JWT(jwt=token, key=jjwk.JWK(**key.public_jwk_dict), algs=[key.alg])


def test_from_private_json_validates() -> None:
    es = generate_signing_key("ES256")
    with pytest.raises(ValueError, match="EdDSA needs"):
        SigningKey.from_private_json(es.export_private_json(), "EdDSA")
    with pytest.raises(ValueError, match="stored alg"):
        SigningKey.from_private_json(
            json.dumps({**json.loads(es.export_private_json()), "alg": "ES384"}).encode(), "ES256"
        )
    with pytest.raises(ValueError, match="thumbprint"):
        SigningKey.from_private_json(
            json.dumps({**json.loads(es.export_private_json()), "kid": "other"}).encode(), "ES256"
        )
    with pytest.raises(ValueError, match="private"):
        SigningKey.from_private_json(json.dumps(es.public_jwk_dict).encode(), "ES256")
    with pytest.raises(ValueError, match="not a valid JWK"):
        SigningKey.from_private_json(b"{not json", "ES256")
    small_rsa = jjwk.JWK.generate(kty="RSA", size=1024)
    with pytest.raises(ValueError, match=">= 2048"):
        SigningKey.from_jwk(small_rsa, "RS256")
    with pytest.raises(ValueError, match="unsupported"):
        generate_signing_key("HS256")  # type: ignore[arg-type]


def test_sign_jwt_verifies_with_jwcrypto(key: SigningKey) -> None:
    token = sign_jwt(key, CLAIMS, typ="at+jwt")
    public = jjwk.JWK(**key.public_jwk_dict)
    verified = jjwt.JWT(jwt=token, key=public, algs=[key.alg])
    assert json.loads(verified.claims) == CLAIMS
    assert json.loads(verified.header) == {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
    # Lower-level JWS path too, and the public key alone is enough.
    jws = jjws.JWS()
    jws.deserialize(token)
    jws.verify(public, alg=key.alg)


def test_sign_jwt_compact_encoding(key: SigningKey) -> None:
    token = sign_jwt(key, CLAIMS, typ="JWT")
    header, payload, signature = token.split(".")
    assert "=" not in token
    assert b64d(header) == f'{{"alg":"{key.alg}","typ":"JWT","kid":"{key.kid}"}}'.encode()
    compact = json.dumps(CLAIMS, separators=(",", ":"), ensure_ascii=False).encode()
    assert b64d(payload) == compact
    expected_len = {"ES256": 64, "EdDSA": 64, "RS256": 256}[key.alg]
    assert len(b64d(signature)) == expected_len  # raw r||s for ES256, not DER


def test_tampered_token_fails_jwcrypto(key: SigningKey) -> None:
    token = sign_jwt(key, CLAIMS, typ="JWT")
    header, _payload, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "sub": "admin"}).encode())
    bad = f"{header}.{forged.rstrip(b'=').decode()}.{signature}"
    with pytest.raises(jjws.InvalidJWSSignature):
        jjwt.JWT(jwt=bad, key=jjwk.JWK(**key.public_jwk_dict), algs=[key.alg])
    other = generate_signing_key(key.alg)
    with pytest.raises(jjws.InvalidJWSSignature):
        jjwt.JWT(jwt=token, key=jjwk.JWK(**other.public_jwk_dict), algs=[key.alg])


def test_sign_jwt_rejects_bad_input(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="typ"):
        sign_jwt(key, CLAIMS, typ="")
    with pytest.raises(ValueError, match="JSON"):
        sign_jwt(key, {"exp": float("nan")}, typ="JWT")


def test_at_hash_known_answers() -> None:
    # OIDC Core 1.0 appendix A.3 / A.4 example values (RS256 = SHA-256 left half).
    assert at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == (
        "77QmUPtjPfzWtF2AnpK9RQ"
    )
    assert at_hash("x", "ES256") == at_hash("x", "RS256")
    assert c_hash("Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk", "RS256") == (
        "LDktKdoQak3Pk0cnXxCltA"
    )


def test_at_hash_eddsa_uses_sha512_left_half() -> None:
    # Same value an independent implementation (FusionAuth's JWT library) publishes for
    # the OpenID Connect WG resolution (connect issue #1125).
    assert at_hash("dNZX1hEZ9wBCzNL40Upu646bdzQA", "EdDSA") == (
        "8xltSlOGYrWy8W9yNvRlEth1i_bXW-JROWPLvCv5zog"
    )
    token = "some-opaque-access-token"
    digest = hashlib.sha512(token.encode()).digest()[:32]
    assert at_hash(token, "EdDSA") == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert len(b64d(at_hash(token, "EdDSA"))) == 32
    assert len(b64d(at_hash(token, "ES256"))) == 16
    with pytest.raises(ValueError, match="unsupported"):
        at_hash(token, "HS256")  # type: ignore[arg-type]
