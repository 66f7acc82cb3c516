"""app_id rules and the app_id -> schema/role mapping (B3)."""

from __future__ import annotations

import itertools

import pytest

from oneauth.db.naming import (
    InvalidAppId,
    InvalidNamespace,
    names_for,
    quote_ident,
    validate_app_id,
)

HOSTILE = [
    "../x",
    "a;drop schema oneauth cascade",
    "APP",
    "Shop",
    "аpp",  # Cyrillic a
    "shop\u200b",  # zero-width space
    "ｓhop",  # fullwidth s
    "a" * 200,
    "a" * 41,
    "ab",
    "app_x",  # underscore would collide with app-x after mapping
    "1app",
    "-app",
    "app-",
    "ap--p",
    "shop\n",
    "",
    "a b",
    'a"b',
]


@pytest.mark.parametrize("app_id", HOSTILE)
def test_hostile_app_ids_are_rejected(app_id: str) -> None:
    with pytest.raises(InvalidAppId):
        validate_app_id(app_id)
    with pytest.raises(InvalidAppId):
        names_for(app_id)


@pytest.mark.parametrize("app_id", ["abc", "shop", "my-app", "a1-b2-c3", "x" * 40])
def test_valid_app_ids(app_id: str) -> None:
    assert validate_app_id(app_id) == app_id


def test_names() -> None:
    names = names_for("my-app")
    assert names.schema == "app_my_app"
    assert names.role == "oneauth_app_my_app"
    assert len(names_for("x" * 40).role) <= 63  # Postgres identifier limit


def test_mapping_is_injective_on_a_dense_sample() -> None:
    alphabet = "ab-1"
    seen: dict[str, str] = {}
    for length in (3, 4, 5, 6):
        for chars in itertools.product(alphabet, repeat=length - 1):
            candidate = "a" + "".join(chars)
            try:
                schema = names_for(candidate).schema
            except InvalidAppId:
                continue
            assert schema not in seen, f"{candidate} and {seen[schema]} share {schema}"
            seen[schema] = candidate
    assert len(seen) > 500


def test_quote_ident_refuses_unexpected_names() -> None:
    assert quote_ident("app_x") == '"app_x"'
    with pytest.raises(ValueError, match="unexpected identifier"):
        quote_ident('x"; drop')


def test_namespaced_role_names_fit_postgres_and_keep_schemas() -> None:
    names = names_for("my-app", "k3x9qa")
    assert names.schema == "app_my_app"  # schemas are per database: no namespace needed
    assert names.role == "oneauth_k3x9qa__my_app"
    longest = names_for("x" * 40, "n" + "9" * 11)
    assert len(longest.role.encode()) <= 63  # Postgres truncates longer identifiers
    assert names_for("shop", "") == names_for("shop")  # '' = the legacy names


@pytest.mark.parametrize("namespace", ["ab", "9abc", "a_b", "a-b", "ABC", "a" * 13, "ä12"])
def test_invalid_namespaces_are_refused(namespace: str) -> None:
    with pytest.raises(InvalidNamespace):
        names_for("shop", namespace)


def test_role_mapping_is_injective_across_namespaces_and_legacy_names() -> None:
    """D2: (namespace, app_id) -> role never collides, also with the legacy ones."""
    app_ids = ["abc", "app", "app-abc", "abc-app", "a-b-c", "ab1", "app-app-x", "xyz9"]
    namespaces = ["", "abc", "app", "appabc", "a12", "abcapp"]
    seen: dict[str, tuple[str, str]] = {}
    for namespace in namespaces:
        for app_id in app_ids:
            role = names_for(app_id, namespace).role
            assert role not in seen, f"{(namespace, app_id)} and {seen[role]} share {role}"
            seen[role] = (namespace, app_id)
