"""The TokenMinter test helper that resource servers use in their own tests."""

from __future__ import annotations

import pytest
from jwcrypto import jwk

from oneauth.verifier import UnknownKey, Verifier
from oneauth.verifier.testing import TokenMinter

from ._support import claims_of, header_of

ISSUER = "https://auth.test/apps/shop"


@pytest.mark.parametrize(("alg", "kty"), [("ES256", "EC"), ("EdDSA", "OKP"), ("RS256", "RSA")])
def test_minted_tokens_verify_without_http(alg: str, kty: str) -> None:
    minter = TokenMinter(ISSUER, "shop", "orders-api", alg)
    verifier = minter.verifier()
    assert isinstance(verifier, Verifier)
    claims = verifier.verify(minter.mint(sub="u1", scope=["a", "b"], roles=["r"]))
    assert claims.sub == "u1"
    assert claims.scopes == {"a", "b"}
    assert claims.roles == {"r"}

    (key,) = minter.jwks["keys"]
    assert (key["kty"], key["alg"], key["use"]) == (kty, alg, "sig")
    assert not {"d", "p", "q"} & set(key)  # public only
    # kid is the RFC 7638 thumbprint of the public key.
    assert key["kid"] == jwk.JWK(**key).thumbprint() == minter.kid


def test_token_shape_matches_oneauth() -> None:
    minter = TokenMinter(ISSUER, "shop", "orders-api")
    token = minter.mint(ttl=60)
    assert header_of(token) == {"alg": "ES256", "typ": "at+jwt", "kid": minter.kid}
    claims = claims_of(token)
    assert (claims["iss"], claims["app_id"], claims["aud"]) == (ISSUER, "shop", "orders-api")
    assert claims["exp"] - claims["iat"] == 60
    assert {"sub", "jti", "client_id", "scope", "nbf", "sid", "amr", "auth_time"} <= set(claims)
    assert "grant" not in claims
    client = claims_of(minter.mint_client_token("svc"))
    assert client["sub"] == client["client_id"] == "svc"
    assert client["grant"] == "client_credentials"
    assert "sid" not in client


def test_overrides() -> None:
    minter = TokenMinter(ISSUER, "shop", "orders-api")
    token = minter.mint(nbf=None, custom={"x": 1}, headers={"typ": "application/at+jwt"})
    assert "nbf" not in claims_of(token)
    assert claims_of(token)["custom"] == {"x": 1}
    assert header_of(token)["typ"] == "application/at+jwt"
    assert minter.verifier().verify(token).raw["custom"] == {"x": 1}


def test_rotation() -> None:
    minter = TokenMinter(ISSUER, "shop", "orders-api")
    old_kid, old_token = minter.kid, minter.mint()
    new_kid = minter.rotate()
    assert new_kid == minter.kid != old_kid
    assert [k["kid"] for k in minter.jwks["keys"]] == [old_kid, new_kid]
    both = minter.verifier()
    both.verify(old_token)
    both.verify(minter.mint())

    minter.rotate(keep_old=False)
    only_new = minter.verifier()
    with pytest.raises(UnknownKey):
        only_new.verify(old_token)


def test_unsupported_alg() -> None:
    with pytest.raises(ValueError, match="alg"):
        TokenMinter(ISSUER, "shop", "orders-api", alg="HS256")


def test_minter_clock_drives_times() -> None:
    now = [1_700_000_000.0]
    minter = TokenMinter(ISSUER, "shop", "orders-api", clock=lambda: now[0])
    token = minter.mint(ttl=10)
    assert claims_of(token)["iat"] == 1_700_000_000
    verifier = minter.verifier()  # shares the minter's clock
    verifier.verify(token)
    now[0] += 10 + 30
    with pytest.raises(Exception, match="expired"):
        verifier.verify(token)
