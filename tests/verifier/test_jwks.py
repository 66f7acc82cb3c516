"""JWKS discovery, caching, rotation, cooldown, single flight and stale grace.

Everything runs against the live key server; request counts come from it.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from oneauth.verifier import (
    DiscoveryError,
    JWKSUnavailable,
    UnknownKey,
    VerificationError,
    Verifier,
)

from ._keyserver import FakeClock, KeyServer
from ._support import AUDIENCE, LiveIssuer, rejected, run
from .conftest import MakeIssuer


def _stranger_token(live: LiveIssuer, stranger: LiveIssuer) -> str:
    """Valid claims for ``live``, signed by a key ``live`` never published, random kid."""
    return stranger.minter.sign(live.minter.claims(), headers={"kid": secrets.token_urlsafe(16)})


async def test_rotated_key_is_accepted_after_exactly_one_refresh(
    shop: LiveIssuer, mode: str
) -> None:
    verifier = shop.verifier()
    old_token = shop.minter.mint()
    await run(verifier, old_token, mode)
    assert (shop.count("discovery"), shop.count("jwks")) == (1, 1)

    shop.minter.rotate()  # oneauth publishes the new key next to the old one
    shop.publish()
    claims = await run(verifier, shop.minter.mint(sub="after-rotation"), mode)

    assert claims.sub == "after-rotation"
    assert (shop.count("discovery"), shop.count("jwks")) == (1, 2)
    await run(verifier, old_token, mode)  # old key still published and cached
    await run(verifier, shop.minter.mint(), mode)
    assert shop.count("jwks") == 2


async def test_retired_key_is_rejected_after_refresh(
    shop: LiveIssuer, make_issuer: MakeIssuer, mode: str
) -> None:
    clock = FakeClock()
    live = make_issuer(clock=clock)
    verifier = live.verifier(jwks_ttl=60)
    old_token = live.minter.mint(ttl=3600)
    await run(verifier, old_token, mode)
    live.minter.rotate(keep_old=False)
    live.publish()
    clock.advance(61)  # TTL over: the next verification refetches
    await run(verifier, live.minter.mint(), mode)
    await rejected(verifier, old_token, mode, UnknownKey, "kid")


async def test_unknown_kid_storm_refreshes_once_per_cooldown(
    make_issuer: MakeIssuer, mode: str
) -> None:
    clock = FakeClock()
    live, stranger = make_issuer(clock=clock), make_issuer(clock=clock)
    verifier = live.verifier(refresh_cooldown=30)
    await run(verifier, live.minter.mint(), mode)
    assert live.count() == 1

    for _ in range(50):
        await rejected(verifier, _stranger_token(live, stranger), mode, UnknownKey, "kid")
    assert live.count() == 2  # one forced refresh for the whole storm

    clock.advance(29)
    await rejected(verifier, _stranger_token(live, stranger), mode, UnknownKey, "kid")
    assert live.count() == 2
    clock.advance(1)
    await rejected(verifier, _stranger_token(live, stranger), mode, UnknownKey, "kid")
    assert live.count() == 3
    # Known keys never wait for, or trigger, anything.
    await run(verifier, live.minter.mint(), mode)
    assert live.count() == 3


def test_concurrent_threads_share_one_fetch(make_issuer: MakeIssuer) -> None:
    clock = FakeClock()
    live, stranger = make_issuer(clock=clock), make_issuer(clock=clock)
    live.server.configure(live.app_id, delay=0.1)
    verifier = live.verifier()
    tokens = [live.minter.mint(sub=f"user-{i}") for i in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        subs = list(pool.map(lambda t: verifier.verify(t).sub, tokens))
    assert subs == [f"user-{i}" for i in range(24)]
    assert (live.count("discovery"), live.count("jwks")) == (1, 1)  # cold start: one fetch

    live.minter.rotate()
    live.publish()
    rotated = [live.minter.mint(sub=f"rotated-{i}") for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        subs = list(pool.map(lambda t: verifier.verify(t).sub, rotated))
    assert subs == [f"rotated-{i}" for i in range(12)]
    assert live.count("jwks") == 2

    def attempt(token: str) -> str:
        try:
            verifier.verify(token)
        except VerificationError as exc:
            return exc.check
        return "accepted"

    clock.advance(30)  # past the cooldown of the rotation refresh
    storm = [_stranger_token(live, stranger) for _ in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        checks = list(pool.map(attempt, storm))
    assert checks == ["kid"] * 24
    assert live.count("jwks") == 3


async def test_concurrent_coroutines_share_one_fetch(make_issuer: MakeIssuer) -> None:
    clock = FakeClock()
    live, stranger = make_issuer(clock=clock), make_issuer(clock=clock)
    live.server.configure(live.app_id, delay=0.1)
    verifier = live.verifier()
    results = await asyncio.gather(
        *(verifier.averify(live.minter.mint(sub=f"user-{i}")) for i in range(24))
    )
    assert [c.sub for c in results] == [f"user-{i}" for i in range(24)]
    assert (live.count("discovery"), live.count("jwks")) == (1, 1)

    live.minter.rotate()
    live.publish()
    results = await asyncio.gather(
        *(verifier.averify(live.minter.mint(sub=f"rotated-{i}")) for i in range(12))
    )
    assert [c.sub for c in results] == [f"rotated-{i}" for i in range(12)]
    assert live.count("jwks") == 2

    clock.advance(30)  # past the cooldown of the rotation refresh
    storm = await asyncio.gather(
        *(verifier.averify(_stranger_token(live, stranger)) for _ in range(24)),
        return_exceptions=True,
    )
    assert all(isinstance(r, UnknownKey) for r in storm)
    assert live.count("jwks") == 3


async def test_cached_keys_do_not_wait_for_a_running_refresh(make_issuer: MakeIssuer) -> None:
    clock = FakeClock()
    live = make_issuer(clock=clock)
    verifier = live.verifier(jwks_ttl=60)
    await verifier.averify(live.minter.mint())
    clock.advance(61)  # stale: the next call refreshes
    live.server.configure(live.app_id, delay=0.2)
    refresh = asyncio.ensure_future(verifier.averify(live.minter.mint(sub="refresher")))
    await asyncio.sleep(0.05)  # the refresh is now in flight
    quick = await asyncio.wait_for(verifier.averify(live.minter.mint(sub="quick")), 0.1)
    assert quick.sub == "quick"
    assert not refresh.done()
    assert (await refresh).sub == "refresher"
    assert live.count() == 2


async def test_keys_expire_after_ttl(make_issuer: MakeIssuer, mode: str) -> None:
    clock = FakeClock()
    live = make_issuer(clock=clock)
    verifier = live.verifier(jwks_ttl=300)
    await run(verifier, live.minter.mint(), mode)
    clock.advance(299)
    await run(verifier, live.minter.mint(), mode)
    assert live.count() == 1
    clock.advance(2)
    await run(verifier, live.minter.mint(), mode)
    assert (live.count("discovery"), live.count("jwks")) == (1, 2)


async def test_server_down_keeps_cached_keys_within_stale_grace(
    make_issuer: MakeIssuer, mode: str
) -> None:
    server = KeyServer().start()
    try:
        clock = FakeClock()
        live = make_issuer(clock=clock, server=server)
        verifier = live.verifier(jwks_ttl=300, stale_grace=600, refresh_cooldown=30)
        await run(verifier, live.minter.mint(), mode)
    finally:
        server.stop()  # connection refused from now on

    clock.advance(301)  # expired; refresh fails; stale keys still serve
    await run(verifier, live.minter.mint(), mode)
    clock.advance(300 + 600 - 301 - 1)  # one second before the grace runs out
    await run(verifier, live.minter.mint(), mode)
    clock.advance(2)
    exc = await rejected(verifier, live.minter.mint(), mode, JWKSUnavailable, "jwks")
    assert "ConnectError" in str(exc)
    # Unknown kids fail closed the same way.
    token = live.minter.mint(headers={"kid": "rotated-while-down"})
    await rejected(verifier, token, mode, JWKSUnavailable, "jwks")


async def test_failing_refresh_backs_off_then_recovers(make_issuer: MakeIssuer, mode: str) -> None:
    clock = FakeClock()
    live = make_issuer(clock=clock)
    verifier = live.verifier(jwks_ttl=300, stale_grace=3600, refresh_cooldown=30)
    await run(verifier, live.minter.mint(), mode)
    live.server.configure(live.app_id, status=503)

    clock.advance(301)
    for _ in range(20):
        await run(verifier, live.minter.mint(), mode)
    assert live.count() == 2  # one failed attempt, then back off
    clock.advance(30)
    await run(verifier, live.minter.mint(), mode)
    assert live.count() == 3

    live.server.configure(live.app_id, status=200)
    clock.advance(30)
    await run(verifier, live.minter.mint(), mode)
    await run(verifier, live.minter.mint(), mode)
    assert live.count() == 4  # recovered, fresh again


async def test_initial_fetch_failure_fails_closed_and_backs_off(
    make_issuer: MakeIssuer, mode: str
) -> None:
    clock = FakeClock()
    live = make_issuer(clock=clock)
    live.server.configure(live.app_id, status=500)
    verifier = live.verifier(refresh_cooldown=30)
    exc = await rejected(verifier, live.minter.mint(), mode, JWKSUnavailable, "jwks")
    assert "HTTP 500" in str(exc)
    for _ in range(5):
        await rejected(verifier, live.minter.mint(), mode, JWKSUnavailable, "jwks")
    assert live.count("discovery") == 1
    live.server.configure(live.app_id, status=200)
    clock.advance(30)
    assert (await run(verifier, live.minter.mint(), mode)).sub == "user-1"


async def test_discovery_issuer_mismatch_is_rejected(shop: LiveIssuer, mode: str) -> None:
    shop.server.configure(shop.app_id, discovery_issuer=shop.issuer + "/")
    verifier = shop.verifier()
    exc = await rejected(verifier, shop.minter.mint(), mode, DiscoveryError, "discovery")
    assert isinstance(exc, JWKSUnavailable)
    assert shop.count("jwks") == 0  # keys of an impostor issuer are never fetched
    with pytest.raises(DiscoveryError):
        if mode == "sync":
            verifier.refresh_keys()
        else:
            await verifier.arefresh_keys()


async def test_explicit_jwks_uri_skips_discovery(shop: LiveIssuer, mode: str) -> None:
    verifier = shop.verifier(jwks_uri=shop.server.jwks_uri(shop.app_id))
    await run(verifier, shop.minter.mint(), mode)
    assert (shop.count("discovery"), shop.count("jwks")) == (0, 1)


async def test_refresh_keys_warms_the_cache(shop: LiveIssuer, mode: str) -> None:
    verifier = shop.verifier()
    if mode == "sync":
        verifier.refresh_keys()
    else:
        await verifier.arefresh_keys()
    assert shop.count("jwks") == 1
    await run(verifier, shop.minter.mint(), mode)
    assert shop.count("jwks") == 1


async def test_junk_in_jwks_does_not_hide_good_keys(shop: LiveIssuer, mode: str) -> None:
    good = shop.minter.public_jwk()
    private = {**good, "kid": "leaked", "d": "AAAA"}
    encryption = {**good, "kid": "enc", "use": "enc"}
    wrong_alg = {**good, "kid": "wrong-alg", "alg": "RS256"}
    shop.server.publish(
        shop.app_id, {"keys": ["junk", {"kty": "oct", "k": "c2VjcmV0"}, private, encryption,
                               wrong_alg, good]}
    )  # fmt: skip
    verifier = shop.verifier()
    await run(verifier, shop.minter.mint(), mode)
    for kid in ("leaked", "enc", "wrong-alg"):
        token = shop.minter.mint(headers={"kid": kid})
        await rejected(verifier, token, mode, UnknownKey, "kid")


async def test_duplicate_kid_is_dropped(
    shop: LiveIssuer, make_issuer: MakeIssuer, mode: str
) -> None:
    other = make_issuer().minter.public_jwk()
    shop.server.publish(
        shop.app_id, {"keys": [shop.minter.public_jwk(), {**other, "kid": shop.minter.kid}]}
    )
    await rejected(shop.verifier(), shop.minter.mint(), mode, UnknownKey, "kid")


@pytest.mark.parametrize(
    "document",
    [{"keys": "nope"}, {"no_keys": []}, {"keys": [], "pad": "x" * 600_000}],
    ids=["keys-not-list", "no-keys", "too-large"],
)
async def test_unusable_jwks_document_fails_closed(
    shop: LiveIssuer, mode: str, document: dict[str, object]
) -> None:
    shop.server.publish(shop.app_id, document)
    await rejected(shop.verifier(), shop.minter.mint(), mode, JWKSUnavailable, "jwks")


async def test_caller_provided_http_clients_are_used(shop: LiveIssuer) -> None:
    import httpx

    with httpx.Client() as client:
        async with httpx.AsyncClient() as aclient:
            verifier = Verifier(
                shop.issuer, AUDIENCE, shop.app_id, http_client=client, async_http_client=aclient
            )
            verifier.refresh_keys()
            await verifier.arefresh_keys()
            assert verifier.verify(shop.minter.mint()).sub == "user-1"
    assert shop.count("jwks") == 2
