"""The per-app key ring (oneauth.apps.dek, requirements K1, K4): routing, legacy values, bounds."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from oneauth.apps import sealed
from oneauth.apps.dek import (
    AppDek,
    AppKeyNotLoaded,
    KeyRing,
    app_of_context,
    new_dek_id,
    wrap_context,
)
from oneauth.secretbox import SecretBox, SecretBoxError, sealed_key_id

K1 = os.urandom(32)
K2 = os.urandom(32)


def ring(**kwargs: int) -> KeyRing:
    return KeyRing({"m1": K1}, "m1", **kwargs)


def learned(r: KeyRing, app_id: str) -> AppDek:
    dek_id = new_dek_id()
    dek = AppDek(dek_id, r.wrap(app_id, dek_id, os.urandom(32)))
    r.learn(app_id, dek)
    return dek


def test_app_contexts_seal_with_the_apps_data_key_and_others_with_the_master_key() -> None:
    r = ring()
    dek = learned(r, "shop")
    value = r.seal(b"seed", context="app:shop/totp/u/f")
    assert sealed_key_id(value) == dek.dek_id
    assert r.open(value, context="app:shop/totp/u/f") == b"seed"
    # The master key alone does not open it.
    with pytest.raises(SecretBoxError):
        SecretBox({"m1": K1}, "m1").open(value, context="app:shop/totp/u/f")
    platform = r.seal(b"x", context="console-session-tokens")
    assert sealed_key_id(platform) == "m1"
    # Stored in the control schema and checked with the master key: not the app's key.
    proof = r.seal(b"kid", context="app:shop/audit-checkpoint-key")
    assert sealed_key_id(proof) == "m1"
    idem = r.seal(b"{}", context="oneauth/admin-idempotency|shop|client|c1|k")
    assert sealed_key_id(idem) == dek.dek_id


def test_another_apps_value_does_not_open_even_with_its_own_context_rewritten() -> None:
    r = ring()
    learned(r, "shop")
    learned(r, "blog")
    value = r.seal(b"secret", context="app:shop/idp-secret/p1")
    with pytest.raises(SecretBoxError):
        r.open(value, context="app:blog/idp-secret/p1")
    with pytest.raises(SecretBoxError):
        r.for_app("blog").open(value, context="app:blog/idp-secret/p1")
    with pytest.raises(ValueError, match="context of app"):
        r.for_app("blog").open(value, context="app:shop/idp-secret/p1")


def test_legacy_master_key_values_still_open_and_need_a_reseal() -> None:
    r = ring()
    learned(r, "shop")
    legacy = SecretBox({"m1": K1}, "m1").seal(b"old", context="app:shop/signing-key/k1")
    assert r.open(legacy, context="app:shop/signing-key/k1") == b"old"
    box = r.for_app("shop")
    assert box.needs_reseal(legacy)
    assert not box.needs_reseal(box.seal(b"new", context="app:shop/signing-key/k1"))


def test_an_app_the_ring_never_learned_is_an_error_not_a_master_key_fallback() -> None:
    r = ring()
    with pytest.raises(AppKeyNotLoaded):
        r.seal(b"x", context="app:shop/totp/u/f")
    # An app that has no key yet (before `migrate`): the master key, as before.
    r.learn("old-app", None)
    assert sealed_key_id(r.seal(b"x", context="app:old-app/totp/u/f")) == "m1"


def test_a_stale_record_without_a_key_never_downgrades_a_known_key() -> None:
    r = ring()
    dek = learned(r, "shop")
    r.learn("shop", None)
    assert r.dek_id_of("shop") == dek.dek_id
    r.forget("shop")
    assert not r.knows("shop")


def test_unwrapped_keys_are_bounded_and_reopened_on_demand() -> None:
    r = ring(max_open=3)
    values = {}
    for n in range(10):
        app_id = f"app-{n:03d}"
        learned(r, app_id)
        values[app_id] = r.seal(b"v", context=f"app:{app_id}/x")
    assert len(r._open) == 3
    for app_id, value in values.items():
        assert r.open(value, context=f"app:{app_id}/x") == b"v"
    assert len(r._open) == 3


def test_rotating_the_master_key_rewraps_without_changing_the_data_key() -> None:
    old = ring()
    dek = learned(old, "shop")
    value = old.seal(b"v", context="app:shop/x")
    both = KeyRing({"m2": K2, "m1": K1}, "m2")
    raw = both.unwrap("shop", dek)
    rewrapped = AppDek(dek.dek_id, both.wrap("shop", dek.dek_id, raw))
    assert sealed_key_id(rewrapped.wrapped) == "m2"
    only_new = KeyRing({"m2": K2}, "m2")
    only_new.learn("shop", rewrapped)
    assert only_new.open(value, context="app:shop/x") == b"v"
    # The wrapping is bound to the app and key id.
    with pytest.raises(SecretBoxError):
        only_new.unwrap("blog", rewrapped)
    assert wrap_context("shop", dek.dek_id) != wrap_context("blog", dek.dek_id)


def test_master_key_ids_cannot_pose_as_data_key_ids() -> None:
    fake = new_dek_id()
    with pytest.raises(ValueError, match="dek-"):
        KeyRing({fake: K1}, fake)


def test_app_of_context() -> None:
    assert app_of_context("app:shop/totp/1/2") == "shop"
    assert app_of_context("app:Shop/totp") is None
    assert app_of_context("console-login") is None
    assert app_of_context("oneauth/app-dek/shop/dek-1") is None


def test_every_sealed_column_of_the_app_templates_is_in_the_one_list() -> None:
    root = Path(__file__).resolve().parents[2] / "sql" / "app"
    found: set[tuple[str, str]] = set()
    for path in sorted(root.glob("*.sql")):
        table = None
        for line in path.read_text().splitlines():
            create = re.match(r"CREATE TABLE (\w+)", line)
            if create:
                table = create.group(1)
            column = re.match(r"\s+(\w+_sealed)\s+text", line)
            if column and table:
                found.add((table, column.group(1)))
    listed = {(e.table, e.column) for e in sealed.SEALED}
    assert found <= listed, f"sealed columns missing from oneauth.apps.sealed: {found - listed}"
    assert found, "the scan found no sealed column at all"
    # The one sealed value inside a JSON column.
    assert ("auth_flows", "data") in listed


def test_a_wrapped_key_is_bound_to_its_app() -> None:
    """An archive's key installed under another app_id does not unwrap (dek.install's check)."""
    r = ring()
    dek = learned(r, "shop")
    with pytest.raises(SecretBoxError):
        r.unwrap("blog", dek)
    assert len(r.unwrap("shop", dek)) == 32


def test_a_loader_teaches_the_ring_an_app_no_record_did() -> None:
    r = ring()
    source = KeyRing({"m1": K1}, "m1")
    dek = learned(source, "shop")
    asked: list[str] = []

    def load(app_id: str) -> AppDek | None:
        asked.append(app_id)
        return dek if app_id == "shop" else None

    r.loader = load
    value = r.seal(b"v", context="app:shop/x")
    assert sealed_key_id(value) == dek.dek_id
    assert r.open(value, context="app:shop/x") == b"v"
    assert asked == ["shop"]  # once per app, then known
