"""Tokens never cross app boundaries: app A's tokens are worthless to app B.

Two apps on the live key server, each with its own issuer and keys, sharing
an audience name (the worst case: the same API deployed for both apps).
"""

from __future__ import annotations

import pytest

from oneauth.verifier import InvalidIssuer, InvalidSignature, UnknownKey, WrongApp

from ._support import LiveIssuer, rejected, run
from .conftest import MakeIssuer


@pytest.fixture
def apps(make_issuer: MakeIssuer) -> tuple[LiveIssuer, LiveIssuer]:
    return make_issuer("ES256"), make_issuer("EdDSA")


async def test_each_app_accepts_its_own_tokens(
    apps: tuple[LiveIssuer, LiveIssuer], mode: str
) -> None:
    a, b = apps
    assert (await run(a.verifier(), a.minter.mint(), mode)).app_id == a.app_id
    assert (await run(b.verifier(), b.minter.mint(), mode)).app_id == b.app_id


async def test_token_of_app_a_is_rejected_by_app_b(
    apps: tuple[LiveIssuer, LiveIssuer], mode: str
) -> None:
    a, b = apps
    verifier_b = b.verifier()
    await run(verifier_b, b.minter.mint(), mode)
    # A's kid is not in B's JWKS, even after B's verifier refreshes for it.
    await rejected(verifier_b, a.minter.mint(), mode, UnknownKey, "kid")
    assert b.count() == 2
    assert a.count() == 0  # B never looks at A's keys


async def test_b_rejects_a_claims_even_under_b_signature(
    apps: tuple[LiveIssuer, LiveIssuer], mode: str
) -> None:
    # Defence in depth against an issuer bug that signs another app's claims.
    a, b = apps
    verifier_b = b.verifier()
    await rejected(verifier_b, b.minter.sign(a.minter.claims()), mode, InvalidIssuer, "iss")
    token = b.minter.mint(app_id=a.app_id)
    await rejected(verifier_b, token, mode, WrongApp, "app_id")


async def test_a_signature_under_b_kid_is_rejected(make_issuer: MakeIssuer, mode: str) -> None:
    a, b = make_issuer("ES256"), make_issuer("ES256")
    token = a.minter.sign(b.minter.claims(), headers={"kid": b.minter.kid})
    await rejected(b.verifier(), token, mode, InvalidSignature, "signature")


async def test_b_verifier_pointed_at_a_keys_still_checks_issuer_and_app(
    apps: tuple[LiveIssuer, LiveIssuer], mode: str
) -> None:
    # Misconfiguration: B's verifier fetching A's JWKS. A's tokens verify
    # cryptographically but still carry A's issuer and app.
    a, b = apps
    verifier = b.verifier(jwks_uri=a.server.jwks_uri(a.app_id))
    await rejected(verifier, a.minter.mint(), mode, InvalidIssuer, "iss")
    forged_iss = a.minter.mint(iss=b.issuer)
    await rejected(verifier, forged_iss, mode, WrongApp, "app_id")
