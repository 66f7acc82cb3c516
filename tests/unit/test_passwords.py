"""Password policy (P1, P2) and Argon2id hasher (P1, P4)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Iterator

import argon2
import pytest

from oneauth.identity.passwords import (
    HasherBusy,
    PasswordHasher,
    PasswordPolicy,
    VerifyResult,
    WeakPassword,
    _common_passwords,
    check_password,
    is_common_password,
)

STRONG = "correct horse battery staple"


# --------------------------------------------------------------------------- policy


def reason(password: str, *, email: str | None = None, app_name: str | None = None) -> str | None:
    try:
        check_password(password, email=email, app_name=app_name)
    except WeakPassword as exc:
        return exc.reason_code
    return None


def test_length_boundaries() -> None:
    assert reason("Zq7#vLp") == "too_short"  # 7
    assert reason("Zq7#vLp2") is None  # 8
    assert reason("Zq7#vLp2" * 16) is None  # 128
    assert reason("Zq7#vLp2" * 16 + "x") == "too_long"  # 129


def test_no_truncation_or_composition_rules() -> None:
    assert reason("all lowercase words only") is None
    assert reason("   spaces count too   ") is None


def test_unicode_counted_as_code_points() -> None:
    # 8 code points but 16 UTF-8 bytes: passes; 7 two-byte letters: too short.
    assert reason("жёлтыйкот"[:8]) is None
    assert reason("жёлтыйк") == "too_short"
    # 4 astral symbols = 4 code points (8 UTF-16 units, 16 bytes): too short.
    assert reason("🔑🔑🔑🔑") == "too_short"
    # 128 CJK characters pass, 129 do not.
    assert reason("密" * 128) is None
    assert reason("密" * 129) == "too_long"


def test_length_counted_after_nfc() -> None:
    decomposed = "e\u0301" * 7  # 14 code points as typed, 7 after NFC
    assert reason(decomposed) == "too_short"
    assert reason("e\u0301" * 8) is None


def test_lone_surrogate_is_invalid() -> None:
    assert reason("abcdefgh\ud800") == "invalid"


@pytest.mark.parametrize("password", ["password", "PASSWORD", "PassWord", "12345678", "Qwertyuiop"])
def test_common_passwords_rejected_case_insensitively(password: str) -> None:
    assert reason(password) == "common"


@pytest.mark.parametrize("password", ["Password2024!", "aaaaaaaaaa", "87654321", "qwerasdfzxcv"])
def test_systematic_variants_rejected(password: str) -> None:
    assert reason(password) == "common"


def test_common_list_shape() -> None:
    common = _common_passwords()
    assert len(common) > 10_000
    assert all(len(p) >= 8 and p == p.casefold() for p in common)
    assert not any(p.startswith("#") for p in common)  # header comments are skipped
    assert is_common_password("IloveYou1")
    assert not is_common_password(STRONG)
    assert _common_passwords() is common  # loaded once


def test_email_local_part() -> None:
    assert reason("alice.smith", email="Alice.Smith@example.com") == "contains_email"
    assert reason("my-alice.smith-pw", email="alice.smith@example.com") == "contains_email"
    assert reason("BOBSMITH99!", email="alice+news@example.com") is None
    assert reason("ALICESMITH99!", email="alice+news@example.com") == "contains_email"
    assert reason("xx alice xx", email="alice+news@example.com") == "contains_email"
    # Local parts under 4 characters are too generic to ban.
    assert reason("bob-rides-bikes", email="bob@example.com") is None


def test_app_name_context() -> None:
    assert reason("ilovemyshop2024", app_name="MyShop") == "context"
    assert reason("ilovemyshop2024", app_name="My Shop") == "context"
    assert reason("ilovemyshop2024", app_name="Acme") is None
    assert reason("zebra crossing", app_name="ze") is None


def test_weak_password_carries_code_and_message() -> None:
    with pytest.raises(WeakPassword) as info:
        check_password("short")
    assert info.value.reason_code == "too_short"
    assert "8" in info.value.message
    assert str(info.value) == info.value.message


def test_policy_cannot_be_weakened() -> None:
    with pytest.raises(ValueError, match="min_length"):
        PasswordPolicy(min_length=6)
    with pytest.raises(ValueError, match="max_length"):
        PasswordPolicy(max_length=32)
    strict = PasswordPolicy(min_length=12)
    with pytest.raises(WeakPassword):
        check_password("Zq7#vLp2x9", policy=strict)


# --------------------------------------------------------------------------- hasher


@pytest.fixture(scope="module")
def hasher() -> Iterator[PasswordHasher]:
    ph = PasswordHasher(max_workers=2)
    yield ph
    ph.close()


def test_hash_uses_owasp_parameters(hasher: PasswordHasher) -> None:
    encoded = hasher.hash_sync(STRONG)
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    params = argon2.extract_parameters(encoded)
    assert (params.salt_len, params.hash_len) == (16, 32)


def test_weak_parameters_refused() -> None:
    with pytest.raises(ValueError, match="OWASP"):
        PasswordHasher(memory_cost=4096, time_cost=2)
    with pytest.raises(ValueError, match="OWASP"):
        PasswordHasher(salt_len=8)
    # An OWASP-equivalent pair is fine.
    PasswordHasher(memory_cost=12288, time_cost=3, max_workers=1).close()


async def test_hash_and_verify(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(STRONG)
    assert await hasher.verify(encoded, STRONG)
    assert not await hasher.verify(encoded, STRONG + "!")
    assert not await hasher.verify(encoded, STRONG.upper())
    assert encoded != await hasher.hash(STRONG)  # random salt


async def test_verify_normalizes_to_nfc(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash("caf\u00e9-au-lait")
    assert await hasher.verify(encoded, "cafe\u0301-au-lait")


async def test_malformed_hash_is_false_and_logged(
    hasher: PasswordHasher, caplog: pytest.LogCaptureFixture
) -> None:
    assert not await hasher.verify("not-a-hash", STRONG)
    assert not await hasher.verify("$argon2id$v=19$m=19456,t=2,p=1$bad$bad", STRONG)
    assert "malformed" in caplog.text
    assert STRONG not in caplog.text


async def test_lone_surrogate_never_verifies(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(STRONG)
    assert not await hasher.verify(encoded, "\ud800")
    with pytest.raises(ValueError, match="Unicode"):
        hasher.hash_sync("\ud800")


def test_sync_variants(hasher: PasswordHasher) -> None:
    encoded = hasher.hash_sync(STRONG)
    assert hasher.verify_sync(encoded, STRONG)
    assert not hasher.verify_sync(encoded, "nope nope nope")


def test_needs_rehash(hasher: PasswordHasher) -> None:
    current = hasher.hash_sync(STRONG)
    assert not hasher.needs_rehash(current)
    weaker = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(STRONG)
    assert hasher.needs_rehash(weaker)
    argon2i = argon2.PasswordHasher(
        time_cost=2, memory_cost=19456, parallelism=1, type=argon2.Type.I
    ).hash(STRONG)
    assert hasher.needs_rehash(argon2i)
    stronger = PasswordHasher(time_cost=3, max_workers=1)
    assert stronger.needs_rehash(current)
    stronger.close()
    assert hasher.needs_rehash("garbage")


async def test_verify_and_rehash(hasher: PasswordHasher) -> None:
    old = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(STRONG)
    ok, new_hash = await hasher.verify_and_rehash(old, STRONG)
    assert ok
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await hasher.verify(new_hash, STRONG)
    assert await hasher.verify_and_rehash(new_hash, STRONG) == VerifyResult(True, None)
    assert await hasher.verify_and_rehash(old, "wrong password") == VerifyResult(False, None)


async def test_busy_limit_raises_and_recovers() -> None:
    ph = PasswordHasher(max_workers=1, max_pending=2)
    try:
        encoded = ph.hash_sync(STRONG)
        gate = threading.Event()
        # Occupy the single worker so later jobs stay queued.
        blocker = asyncio.get_running_loop().run_in_executor(ph._executor, gate.wait)
        first = asyncio.ensure_future(ph.verify(encoded, STRONG))
        second = asyncio.ensure_future(ph.verify_dummy(STRONG))
        await asyncio.sleep(0)
        with pytest.raises(HasherBusy):
            await ph.verify(encoded, STRONG)
        with pytest.raises(HasherBusy):
            await ph.hash(STRONG)
        gate.set()
        await blocker
        assert await first
        await second
        assert await ph.verify(encoded, STRONG)  # slots were released
    finally:
        ph.close()


async def test_cancelled_queued_job_releases_its_slot() -> None:
    ph = PasswordHasher(max_workers=1, max_pending=1)
    try:
        gate = threading.Event()
        blocker = asyncio.get_running_loop().run_in_executor(ph._executor, gate.wait)
        queued = asyncio.ensure_future(ph.hash(STRONG))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.set()
        await blocker
        assert (await ph.hash(STRONG)).startswith("$argon2id$")
    finally:
        ph.close()


async def test_event_loop_not_blocked(hasher: PasswordHasher) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.ensure_future(ticker())
    await asyncio.gather(*(hasher.hash(STRONG) for _ in range(6)))
    task.cancel()
    # 6 hashes take >= 50 ms of CPU; a blocked loop would tick only a couple of times.
    assert ticks >= 10


async def test_dummy_verify_costs_like_real_verify(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(STRONG)

    async def timed(call: Awaitable[object]) -> float:
        start = time.perf_counter()
        await call
        return time.perf_counter() - start

    real = [await timed(hasher.verify(encoded, "wrong password")) for _ in range(5)]
    dummy = [await timed(hasher.verify_dummy("wrong password")) for _ in range(5)]
    ratio = statistics.median(dummy) / statistics.median(real)
    assert 0.5 < ratio < 2.0, (real, dummy)
    assert statistics.median(dummy) > 0.003  # it really ran argon2 (~17 ms here)
