"""Claim rules (RFC 9068 §4, RFC 7519 §4.1) and the AccessTokenClaims view."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from oneauth.verifier import (
    AccessTokenClaims,
    InvalidAudience,
    InvalidClaims,
    InvalidIssuer,
    MalformedToken,
    TokenExpired,
    TokenNotYetValid,
    VerificationError,
    WrongApp,
)
from oneauth.verifier.testing import TokenMinter

from ._keyserver import FakeClock
from ._support import AUDIENCE, rejected, run

ISSUER = "https://auth.test/apps/shop"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000)


@pytest.fixture
def minter(clock: FakeClock) -> TokenMinter:
    # Claim rules do not depend on where keys come from: static keys keep
    # these tests independent of HTTP (test_verify covers the live path).
    return TokenMinter(ISSUER, "shop", AUDIENCE, clock=clock)


@pytest.mark.parametrize(
    ("extra", "error", "check"),
    [
        ({"iss": "https://auth.test/apps/blog"}, InvalidIssuer, "iss"),
        ({"iss": ISSUER + "/"}, InvalidIssuer, "iss"),  # exact match, no normalisation
        ({"iss": "HTTPS://auth.test/apps/shop"}, InvalidIssuer, "iss"),
        ({"iss": None}, InvalidIssuer, "iss"),
        ({"aud": "billing-api"}, InvalidAudience, "aud"),
        ({"aud": ["billing-api", "search-api"]}, InvalidAudience, "aud"),
        ({"aud": []}, InvalidAudience, "aud"),
        ({"aud": [AUDIENCE, 7]}, InvalidAudience, "aud"),
        ({"aud": None}, InvalidAudience, "aud"),
        ({"aud": {"orders-api": True}}, InvalidAudience, "aud"),
        ({"app_id": "blog"}, WrongApp, "app_id"),
        ({"app_id": None}, WrongApp, "app_id"),
        ({"exp": None}, InvalidClaims, "exp"),
        ({"exp": "1900000000"}, InvalidClaims, "exp"),
        ({"exp": True}, InvalidClaims, "exp"),
        ({"exp": 10**13}, InvalidClaims, "exp"),
        ({"iat": None}, InvalidClaims, "iat"),
        ({"iat": "now"}, InvalidClaims, "iat"),
        ({"nbf": "soon"}, InvalidClaims, "nbf"),
        ({"sub": None}, InvalidClaims, "claims"),
        ({"sub": ""}, InvalidClaims, "claims"),
        ({"client_id": None}, InvalidClaims, "claims"),
        ({"jti": None}, InvalidClaims, "claims"),
        ({"jti": 12345}, InvalidClaims, "claims"),
        ({"scope": ["orders:read"]}, InvalidClaims, "claims"),
        ({"roles": "admin"}, InvalidClaims, "claims"),
        ({"roles": ["admin", 1]}, InvalidClaims, "claims"),
        ({"amr": "pwd"}, InvalidClaims, "claims"),
        ({"sid": 5}, InvalidClaims, "claims"),
        ({"auth_time": "yesterday"}, InvalidClaims, "claims"),
        ({"email_verified": "yes"}, InvalidClaims, "claims"),
        # A client-credentials token always acts as its own client.
        ({"grant": "client_credentials", "sub": "user-1"}, InvalidClaims, "claims"),
    ],
    ids=repr,
)
async def test_claim_rules(
    minter: TokenMinter,
    mode: str,
    extra: dict[str, Any],
    error: type[VerificationError],
    check: str,
) -> None:
    claims = minter.claims()
    for name, value in extra.items():  # applied raw: None deletes, lists stay lists
        if value is None:
            del claims[name]
        else:
            claims[name] = value
    await rejected(minter.verifier(), minter.sign(claims), mode, error, check)


async def test_expiry_honours_leeway(minter: TokenMinter, clock: FakeClock, mode: str) -> None:
    verifier = minter.verifier(leeway=30)
    token = minter.mint(ttl=60)
    clock.advance(60 + 29)
    await run(verifier, token, mode)
    clock.advance(1)
    await rejected(verifier, token, mode, TokenExpired, "exp")
    strict = minter.verifier(leeway=0)
    await rejected(strict, minter.mint(ttl=0), mode, TokenExpired, "exp")


async def test_not_before_honours_leeway(minter: TokenMinter, clock: FakeClock, mode: str) -> None:
    verifier = minter.verifier(leeway=30)
    await run(verifier, minter.mint(nbf=clock.now + 30), mode)
    await rejected(verifier, minter.mint(nbf=clock.now + 31), mode, TokenNotYetValid, "nbf")
    await run(verifier, minter.mint(nbf=None), mode)  # nbf is optional


async def test_issued_in_the_future_is_rejected(
    minter: TokenMinter, clock: FakeClock, mode: str
) -> None:
    verifier = minter.verifier(leeway=30)
    await run(verifier, minter.mint(iat=clock.now + 30), mode)
    await rejected(verifier, minter.mint(iat=clock.now + 31), mode, InvalidClaims, "iat")


@pytest.mark.parametrize(
    ("payload", "check", "error"),
    [
        (b"[1, 2, 3]", "format", MalformedToken),
        (b"not json", "format", MalformedToken),
        (b"\xff\xfe", "format", MalformedToken),
        (b'{"exp": NaN}', "format", MalformedToken),
        (b'{"exp": Infinity}', "format", MalformedToken),
        (b'{"a": 1} trailing', "format", MalformedToken),
    ],
)
async def test_payload_must_be_a_json_object(
    minter: TokenMinter, mode: str, payload: bytes, check: str, error: type[VerificationError]
) -> None:
    await rejected(minter.verifier(), minter.sign(payload), mode, error, check)


async def test_overflowing_exp_is_rejected(minter: TokenMinter, mode: str) -> None:
    # json parses 1e400 as float("inf"): a token that would never expire.
    text = json.dumps(minter.claims()).replace('"exp": ', '"exp": 1e400, "x": ')
    await rejected(minter.verifier(), minter.sign(text.encode()), mode, InvalidClaims, "exp")


async def test_surrounding_whitespace_in_payload_is_valid_json(
    minter: TokenMinter, mode: str
) -> None:
    payload = b" \n" + json.dumps(minter.claims()).encode() + b"\n "
    assert (await run(minter.verifier(), minter.sign(payload), mode)).sub == "user-1"


async def test_audience_list_and_float_times_are_accepted(
    minter: TokenMinter, clock: FakeClock, mode: str
) -> None:
    token = minter.mint(aud=["search-api", AUDIENCE], exp=clock.now + 10.5, iat=clock.now - 0.5)
    claims = await run(minter.verifier(), token, mode)
    assert claims.aud == ("search-api", AUDIENCE)
    assert claims.exp == clock.now + 10.5


async def test_claims_view(minter: TokenMinter, clock: FakeClock, mode: str) -> None:
    token = minter.mint(
        sub="user-7",
        scope="openid  orders:read orders:write",
        roles=["staff", "admin"],
        sid="sess-1",
        amr=["pwd", "otp"],
        email_verified=True,
        custom="kept in raw",
    )
    claims = await run(minter.verifier(), token, mode)

    assert claims.sub == "user-7"
    assert claims.client_id == "test-client"
    assert claims.jti
    assert (claims.iat, claims.nbf, claims.exp) == (clock.now, clock.now, clock.now + 300)
    assert claims.scopes == frozenset({"openid", "orders:read", "orders:write"})
    assert claims.roles == frozenset({"staff", "admin"})
    assert claims.amr == ("pwd", "otp")
    assert claims.sid == "sess-1"
    assert claims.auth_time == clock.now
    assert claims.email_verified is True
    assert claims.is_client_token is False
    assert claims.raw["custom"] == "kept in raw"

    assert claims.has_scope("orders:read")
    assert claims.has_scope("orders:read", "orders:write")
    assert claims.has_scope()
    assert not claims.has_scope("orders:read", "orders:delete")
    assert claims.has_role("admin")
    assert claims.has_role("admin", "staff")
    assert not claims.has_role("root")


async def test_minimal_token(minter: TokenMinter, mode: str) -> None:
    token = minter.mint(scope=None, roles=None, sid=None, amr=None, auth_time=None, nbf=None)
    claims = await run(minter.verifier(), token, mode)
    assert (claims.scopes, claims.roles, claims.amr) == (frozenset(), frozenset(), ())
    assert (claims.sid, claims.auth_time, claims.nbf, claims.email_verified) == (None,) * 4


async def test_client_credentials_token(minter: TokenMinter, mode: str) -> None:
    claims = await run(
        minter.verifier(), minter.mint_client_token("billing-worker", scope="orders:read"), mode
    )
    assert claims.is_client_token
    assert claims.sub == claims.client_id == "billing-worker"
    assert (claims.sid, claims.amr) == (None, ())
    # A user whose sub happens to equal a client_id is still a user.
    user = await run(minter.verifier(), minter.mint(sub="test-client"), mode)
    assert not user.is_client_token
    other_grant = await run(minter.verifier(), minter.mint(grant="authorization_code"), mode)
    assert not other_grant.is_client_token


async def test_claims_object_is_a_proper_frozen_dataclass(minter: TokenMinter) -> None:
    claims = minter.verifier().verify(minter.mint(scope="a b", roles=["r"]))
    names = {f.name for f in dataclasses.fields(AccessTokenClaims)}
    # The hot path builds instances without __init__; they must be complete.
    assert set(vars(claims)) == names
    rebuilt = AccessTokenClaims(**{name: getattr(claims, name) for name in names})
    assert rebuilt == claims
    assert hash(rebuilt) == hash(claims)
    assert repr(rebuilt) == repr(claims)
    assert "raw" not in repr(claims)
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.sub = "someone-else"  # type: ignore[misc]
    with pytest.raises(TypeError):
        claims.raw["sub"] = "someone-else"  # type: ignore[index]
    assert dataclasses.replace(claims, sub="x").sub == "x"


def test_scope_parsing_is_cached_but_correct(minter: TokenMinter) -> None:
    verifier = minter.verifier()
    first = verifier.verify(minter.mint(scope="b a"))
    second = verifier.verify(minter.mint(scope="b a"))
    assert first.scopes is second.scopes == frozenset({"a", "b"})
    for i in range(300):  # past the cache bound: still right
        assert verifier.verify(minter.mint(scope=f"s{i} x")).scopes == {f"s{i}", "x"}
