"""Secrets at rest (A2): AES-256-GCM sealing bound to a context, rotating master keys."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from oneauth.secretbox import KEY_LEN, SecretBox, SecretBoxError, generate_master_key

CTX = "app:shop/signing-key/abc"
K1 = bytes(range(32))
K2 = bytes(range(32, 64))


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox({"k1": K1}, "k1")


def test_roundtrip(box: SecretBox) -> None:
    sealed = box.seal(b"top secret", context=CTX)
    version, key_id, nonce, _ciphertext = sealed.split(".")
    assert (version, key_id) == ("v1", "k1")
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 12
    assert b"top secret" not in sealed.encode()
    assert box.open(sealed, context=CTX) == b"top secret"
    assert box.open(box.seal(b"", context=CTX), context=CTX) == b""


def test_nonces_are_fresh(box: SecretBox) -> None:
    sealed = {box.seal(b"same", context=CTX) for _ in range(50)}
    assert len(sealed) == 50


def test_wrong_context_fails(box: SecretBox) -> None:
    sealed = box.seal(b"seed", context="app:shop/totp/u1")
    with pytest.raises(SecretBoxError, match="context"):
        box.open(sealed, context="app:blog/totp/u1")
    with pytest.raises(SecretBoxError):
        box.open(sealed, context="app:shop/totp/u2")


def test_empty_context_refused(box: SecretBox) -> None:
    with pytest.raises(ValueError, match="context"):
        box.seal(b"x", context="")


@pytest.mark.parametrize("part", [2, 3])
def test_tamper_detected(box: SecretBox, part: int) -> None:
    sealed = box.seal(b"client secret", context=CTX)
    parts = sealed.split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[part] + "=" * (-len(parts[part]) % 4)))
    raw[0] ^= 1
    parts[part] = b64(bytes(raw))
    with pytest.raises(SecretBoxError):
        box.open(".".join(parts), context=CTX)


@pytest.mark.parametrize(
    "sealed",
    [
        "",
        "v2.k1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.k1.AAAA.AAAAAAAAAAAAAAAAAAAAAA",  # short nonce
        "v1.k1.AAAAAAAAAAAAAAAA.AAAA",  # shorter than a tag
        "v1.k1.AAAAAAAAAAAAAAAA.AAAA AAAAAAAAAAAAAAAAA",  # not base64url
        "v1.k!.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.k1.AAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_rejected(box: SecretBox, sealed: str) -> None:
    with pytest.raises(SecretBoxError):
        box.open(sealed, context=CTX)


def test_non_canonical_base64_rejected(box: SecretBox) -> None:
    sealed = box.seal(b"x", context=CTX)
    head, ct = sealed.rsplit(".", 1)
    with pytest.raises(SecretBoxError):
        box.open(f"{head}.{ct}==", context=CTX)


def test_unknown_key_id(box: SecretBox) -> None:
    other = SecretBox({"k9": K2}, "k9")
    sealed = other.seal(b"x", context=CTX)
    with pytest.raises(SecretBoxError, match="unknown master key id 'k9'"):
        box.open(sealed, context=CTX)


def test_key_id_swap_fails() -> None:
    # Same key bytes under two ids: the id is bound in the AAD, so relabelling fails.
    box = SecretBox({"a": K1, "b": K1}, "a")
    sealed = box.seal(b"x", context=CTX)
    with pytest.raises(SecretBoxError):
        box.open(sealed.replace("v1.a.", "v1.b.", 1), context=CTX)


def test_rotation() -> None:
    old = SecretBox({"k1": K1}, "k1")
    legacy = old.seal(b"old secret", context=CTX)
    rotated = SecretBox({"k2": K2, "k1": K1}, "k2")
    assert rotated.open(legacy, context=CTX) == b"old secret"
    assert rotated.needs_reseal(legacy)
    fresh = rotated.seal(b"new secret", context=CTX)
    assert fresh.split(".")[1] == "k2"
    assert not rotated.needs_reseal(fresh)
    with pytest.raises(SecretBoxError):
        old.open(fresh, context=CTX)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="current"):
        SecretBox({"k1": K1}, "k2")
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox({"k1": K1[:16]}, "k1")
    with pytest.raises(ValueError, match="key ids"):
        SecretBox({"a.b": K1}, "a.b")


def test_repr_has_no_key_material(box: SecretBox) -> None:
    assert K1.hex() not in repr(box)
    assert b64(K1) not in repr(box)
    assert "k1" in repr(box)


# --------------------------------------------------------------------------- config


def test_from_config_single_key() -> None:
    box = SecretBox.from_config(f"  {b64(K1)}\n")
    assert box.current_key_id == hashlib.sha256(K1).hexdigest()[:8]
    assert box.open(box.seal(b"s", context=CTX), context=CTX) == b"s"


def test_from_config_accepts_padding_and_standard_alphabet() -> None:
    key = bytes([0xFB, 0xFF] * 16)  # encodes with "+" and "/" in standard base64
    std = base64.b64encode(key).decode()
    assert "+" in std or "/" in std
    assert SecretBox.from_config(std).current_key_id == hashlib.sha256(key).hexdigest()[:8]
    padded = base64.urlsafe_b64encode(K1).decode()
    assert padded.endswith("=")
    SecretBox.from_config(padded)


def test_from_config_list_first_is_current() -> None:
    box = SecretBox.from_config(f"new:{b64(K2)}, old:{b64(K1)}")
    assert box.current_key_id == "new"
    assert box.key_ids == ("new", "old")
    legacy = SecretBox({"old": K1}, "old").seal(b"v", context=CTX)
    assert box.open(legacy, context=CTX) == b"v"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (b64(K1[:16]), "32 bytes, got 16"),
        (b64(K1 + b"x"), "32 bytes, got 33"),
        ("not*base64!", "not valid base64url"),
        (f"a:{b64(K1)},{b64(K2)}", "entry 2: expected 'keyid:base64key'"),
        (f"a:{b64(K1)},a:{b64(K2)}", "entry 2: duplicate key id 'a'"),
        (f"bad id:{b64(K1)}", "entry 1: key id"),
        (f"a:{b64(K1)},", "entry 2"),
        (f"a:{b64(K1)},b:{b64(K2)[:-4]}", "entry 2: key must decode to 32 bytes"),
        (f"a:{b64(K1)},b:", "entry 2: key is not valid base64url"),
    ],
)
def test_from_config_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        SecretBox.from_config(value)
    text = str(info.value)
    assert "ONEAUTH_MASTER_KEY" in text
    for secret in (b64(K1), b64(K2), b64(K1)[:20], b64(K2)[:20]):
        assert secret not in text
    assert info.value.__cause__ is None


def test_generate_master_key_roundtrips_through_config() -> None:
    value = generate_master_key()
    assert len(base64.urlsafe_b64decode(value + "=")) == KEY_LEN
    assert value != generate_master_key()
    box = SecretBox.from_config(value)
    assert box.open(box.seal(os.urandom(64), context=CTX), context=CTX)
