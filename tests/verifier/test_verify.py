"""Token format, header policy and signature checks, against a live JWKS server."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwe, jwk, jws

from oneauth.verifier import (
    InvalidHeader,
    InvalidSignature,
    MalformedToken,
    TokenTooLarge,
    UnknownKey,
    Verifier,
)

from ._support import AUDIENCE, LiveIssuer, b64, claims_of, json_b64, rejected, run, unb64
from .conftest import MakeIssuer

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
async def test_valid_token_is_accepted(make_issuer: MakeIssuer, alg: str, mode: str) -> None:
    live = make_issuer(alg)
    verifier = live.verifier()
    token = live.minter.mint(sub="user-42", scope="orders:read orders:write", roles=["staff"])

    claims = await run(verifier, token, mode)

    assert claims.sub == "user-42"
    assert claims.iss == live.issuer
    assert claims.app_id == live.app_id
    assert claims.aud == (AUDIENCE,)
    assert claims.scopes == {"orders:read", "orders:write"}
    assert claims.roles == {"staff"}
    assert not claims.is_client_token
    # Discovery once, JWKS once; a second token needs no network at all.
    await run(verifier, live.minter.mint(), mode)
    assert (live.count("discovery"), live.count("jwks")) == (1, 1)


async def test_algorithm_outside_allowlist_is_rejected(make_issuer: MakeIssuer, mode: str) -> None:
    live = make_issuer("EdDSA")
    verifier = live.verifier(algorithms=["ES256"])
    await rejected(verifier, live.minter.mint(), mode, InvalidHeader, "alg")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
async def test_alg_none_is_rejected(shop: LiveIssuer, mode: str, alg: str) -> None:
    header = {"alg": alg, "typ": "at+jwt", "kid": shop.minter.kid}
    token = f"{json_b64(header)}.{json_b64(shop.minter.claims())}."
    await rejected(shop.verifier(), token, mode, InvalidHeader, "alg")


async def test_hs256_with_rsa_public_key_as_secret_is_rejected(
    make_issuer: MakeIssuer, mode: str
) -> None:
    # RFC 8725 §2.1: a verifier that lets the token pick HMAC would check
    # this "signature" with the public key bytes as the secret, and pass.
    live = make_issuer("RS256")
    public = jwk.JWK(**live.minter.public_jwk())
    for secret in (public.export_to_pem(), json.dumps(live.minter.public_jwk()).encode()):
        header = {"alg": "HS256", "typ": "at+jwt", "kid": live.minter.kid}
        signing_input = f"{json_b64(header)}.{json_b64(live.minter.claims())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64(mac)}"
        for verifier in (live.verifier(), live.verifier(algorithms=["RS256"])):
            await rejected(verifier, token, mode, InvalidHeader, "alg")
    assert live.count("jwks") == 0  # refused before any key lookup


async def test_key_decides_the_algorithm(shop: LiveIssuer, mode: str) -> None:
    # An EdDSA signature presented under the ES256 key's kid.
    other = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": shop.minter.kid}
    payload = json.dumps(shop.minter.claims()).encode()
    signed = jws.JWSCore("EdDSA", other, json.dumps(header), payload).sign()
    token = f"{signed['protected']}.{signed['payload'].decode()}.{signed['signature']}"
    await rejected(shop.verifier(), token, mode, InvalidHeader, "alg")


@pytest.mark.parametrize("kid", [None, "", 7])
async def test_missing_or_bad_kid_is_rejected(shop: LiveIssuer, mode: str, kid: object) -> None:
    token = shop.minter.mint(headers={"kid": kid} if kid is not None else {"kid": None})
    await rejected(shop.verifier(), token, mode, InvalidHeader, "kid")


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt+x", None, 1])
async def test_typ_other_than_at_jwt_is_rejected(shop: LiveIssuer, mode: str, typ: object) -> None:
    # An ID token (typ JWT) from the same issuer must not pass as an access token.
    token = shop.minter.mint(headers={"typ": typ})
    await rejected(shop.verifier(), token, mode, InvalidHeader, "typ")


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_typ_variants_from_rfc_9068_are_accepted(
    shop: LiveIssuer, mode: str, typ: str
) -> None:
    claims = await run(shop.verifier(), shop.minter.mint(headers={"typ": typ}), mode)
    assert claims.sub == "user-1"


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "http://127.0.0.1:1/evil-jwks"},
        {"x5u": "http://127.0.0.1:1/evil.pem"},
        {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
        {"crit": ["exp"], "exp": 1},
        {"zip": "DEF"},
    ],
    ids=lambda extra: next(iter(extra)),
)
async def test_forbidden_header_parameters_are_rejected(
    shop: LiveIssuer, mode: str, extra: dict[str, object]
) -> None:
    await rejected(shop.verifier(), shop.minter.mint(headers=extra), mode, InvalidHeader, "header")


async def test_embedded_jwk_header_is_rejected(shop: LiveIssuer, mode: str) -> None:
    token = shop.minter.mint(headers={"jwk": shop.minter.public_jwk()})
    await rejected(shop.verifier(), token, mode, InvalidHeader, "header")


async def test_duplicate_header_member_is_rejected(shop: LiveIssuer, mode: str) -> None:
    kid = shop.minter.kid
    header = f'{{"alg":"ES256","typ":"at+jwt","kid":"{kid}","alg":"none"}}'
    token = f"{b64(header.encode())}.{json_b64(shop.minter.claims())}.AAAA"
    await rejected(shop.verifier(), token, mode, MalformedToken, "format")


async def test_tampered_payload_is_rejected(shop: LiveIssuer, mode: str) -> None:
    verifier = shop.verifier()
    head, _, sig = shop.minter.mint(scope="orders:read").split(".")
    claims = claims_of(f"{head}.{_}.{sig}")
    claims["scope"] = "orders:read admin"
    await rejected(
        verifier, f"{head}.{json_b64(claims)}.{sig}", mode, InvalidSignature, "signature"
    )


async def test_signature_by_another_key_with_our_kid_is_rejected(
    shop: LiveIssuer, make_issuer: MakeIssuer, mode: str
) -> None:
    impostor = make_issuer("ES256").minter
    token = impostor.sign(shop.minter.claims(), headers={"kid": shop.minter.kid})
    await rejected(shop.verifier(), token, mode, InvalidSignature, "signature")


async def test_der_encoded_es256_signature_is_rejected(shop: LiveIssuer, mode: str) -> None:
    # RFC 7518 §3.4: JWS carries raw r || s; DER is a different (longer) encoding.
    head, payload, sig = shop.minter.mint().split(".")
    raw = unb64(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    await rejected(
        shop.verifier(), f"{head}.{payload}.{b64(der)}", mode, InvalidSignature, "signature"
    )


async def test_non_canonical_signature_encoding_is_rejected(shop: LiveIssuer, mode: str) -> None:
    token = shop.minter.mint()
    verifier = shop.verifier()
    await run(verifier, token, mode)
    # 64 bytes -> 86 chars: the last one carries 4 unused bits, normally zero.
    last = _B64URL.index(token[-1])
    variant = token[:-1] + _B64URL[last | 1]
    await rejected(verifier, variant, mode, MalformedToken, "format")


async def test_oversized_token_is_rejected_before_parsing(shop: LiveIssuer, mode: str) -> None:
    verifier = shop.verifier()
    big = shop.minter.mint(blob="x" * 9000)
    await rejected(verifier, big, mode, TokenTooLarge, "size")
    await rejected(verifier, "!" * 8193, mode, TokenTooLarge, "size")  # garbage: size first
    small = shop.verifier(max_token_bytes=256)
    await rejected(small, shop.minter.mint(), mode, TokenTooLarge, "size")
    assert shop.count("jwks") == 0


async def test_jwe_is_rejected(shop: LiveIssuer, mode: str) -> None:
    key = jwk.JWK.generate(kty="RSA", size=2048)
    encrypted = jwe.JWE(
        json.dumps(shop.minter.claims()).encode(),
        protected={"alg": "RSA-OAEP-256", "enc": "A256GCM", "typ": "at+jwt"},
    )
    encrypted.add_recipient(key)
    token = encrypted.serialize(compact=True)
    assert token.count(".") == 4
    exc = await rejected(shop.verifier(), token, mode, MalformedToken, "format")
    assert "JWE" in str(exc)


@pytest.mark.parametrize(
    "template",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "é.b.c",
        "{h}.e30=.AAAA",  # padding
        "{h}.e30.AA+A",  # standard alphabet
        "{h}.e30.AA A",  # whitespace
        "{h}.e30.AA\nA",
        "{h}.e30.AAAAA",  # impossible length (4n+1)
        "bm90IGpzb24.e30.AAAA",  # header is not JSON
        "WzFd.e30.AAAA",  # header is a JSON array
    ],
)
async def test_malformed_tokens_are_rejected(shop: LiveIssuer, mode: str, template: str) -> None:
    # {h}: a header that passes every policy check, so the format is what fails.
    header = json_b64({"alg": "ES256", "typ": "at+jwt", "kid": shop.minter.kid})
    token = template.replace("{h}", header)
    await rejected(shop.verifier(), token, mode, MalformedToken, "format")


async def test_non_string_token_is_rejected(shop: LiveIssuer, mode: str) -> None:
    token: object = shop.minter.mint().encode()
    with pytest.raises(MalformedToken) as info:
        await run(shop.verifier(), token, mode)  # type: ignore[arg-type]
    assert info.value.check == "format"


async def test_empty_signature_is_rejected(shop: LiveIssuer, mode: str) -> None:
    head, payload, _ = shop.minter.mint().split(".")
    await rejected(shop.verifier(), f"{head}.{payload}.", mode, MalformedToken, "format")


async def test_unknown_kid_with_static_keys(shop: LiveIssuer, mode: str) -> None:
    verifier = shop.minter.verifier()
    token = shop.minter.mint(headers={"kid": "not-a-published-kid"})
    await rejected(verifier, token, mode, UnknownKey, "kid")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"leeway": 61}, "leeway"),
        ({"leeway": -1}, "leeway"),
        ({"leeway": True}, "leeway"),
        ({"algorithms": ["HS256"]}, "algorithms"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"algorithms": []}, "algorithms"),
        ({"algorithms": "ES256"}, "algorithms"),
        ({"max_token_bytes": 0}, "max_token_bytes"),
        ({"jwks_ttl": 0}, "jwks_ttl"),
        ({"stale_grace": -1}, "stale_grace"),
        ({"http_timeout": float("nan")}, "http_timeout"),
        ({"jwks_uri": "file:///etc/passwd"}, "jwks_uri"),
        ({"jwks": {"keys": []}, "jwks_uri": "https://x/jwks"}, "jwks"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Verifier("https://auth.test/apps/shop", AUDIENCE, "shop", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("shop", AUDIENCE, "shop"), "issuer"),
        (("https://auth.test/apps/shop", "", "shop"), "audience"),
        (("https://auth.test/apps/shop", AUDIENCE, ""), "app_id"),
    ],
)
def test_bad_identity_is_refused(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Verifier(*args)


def test_max_leeway_is_accepted() -> None:
    assert Verifier("https://auth.test/apps/shop", AUDIENCE, "shop", leeway=60)
