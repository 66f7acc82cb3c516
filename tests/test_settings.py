"""Settings: typed, validated, dev defaults refused in production."""

from __future__ import annotations

import base64

import pytest

from oneauth.settings import DEV_MASTER_KEY, Settings, SettingsError

GOOD_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
PROD = {
    "ONEAUTH_ENV": "production",
    "ONEAUTH_DATABASE_URL": "postgresql://svc:s3cret@db.internal:5432/oneauth",
    "ONEAUTH_PUBLIC_URL": "https://auth.example.com",
    "ONEAUTH_MASTER_KEY": GOOD_KEY,
}


def test_defaults_are_development() -> None:
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.master_key == DEV_MASTER_KEY
    assert settings.issuer_for("shop") == "http://127.0.0.1:8000/apps/shop"


def test_production_accepts_real_values() -> None:
    settings = Settings.from_env(PROD)
    assert settings.is_production
    assert settings.public_url == "https://auth.example.com"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"ONEAUTH_MASTER_KEY": ""}, "ONEAUTH_MASTER_KEY: the development key is refused"),
        ({"ONEAUTH_DATABASE_URL": ""}, "ONEAUTH_DATABASE_URL: the development password"),
        ({"ONEAUTH_PUBLIC_URL": "http://auth.example.com"}, "must be https in production"),
    ],
)
def test_production_refuses_dev_defaults(override: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**PROD, **override})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ONEAUTH_POOL_MAX_SIZE": "many"}, "ONEAUTH_POOL_MAX_SIZE: expected an integer"),
        ({"ONEAUTH_POOL_MIN_SIZE": "20"}, "ONEAUTH_POOL_MIN_SIZE"),
        ({"ONEAUTH_POOL_SHARDS": "11"}, "ONEAUTH_POOL_SHARDS: must be >= 0"),
        ({"ONEAUTH_POOL_SHARDS": "-1"}, "ONEAUTH_POOL_SHARDS: must be >= 0"),
        ({"ONEAUTH_PASSWORD_HASH_THREADS": "-2"}, "ONEAUTH_PASSWORD_HASH_THREADS"),
        ({"ONEAUTH_PORT": "70000"}, "ONEAUTH_PORT: expected a TCP port"),
        ({"ONEAUTH_DATABASE_URL": "mysql://x"}, "ONEAUTH_DATABASE_URL: expected a postgres"),
        ({"ONEAUTH_PUBLIC_URL": "ftp://x"}, "ONEAUTH_PUBLIC_URL: expected a http"),
        ({"ONEAUTH_PUBLIC_URL": "https://x/?a=1"}, "must not carry a query"),
        ({"ONEAUTH_MASTER_KEY": "c2hvcnQ"}, "must decode to 32 bytes"),
        ({"ONEAUTH_ENV": "staging"}, "ONEAUTH_ENV"),
        ({"ONEAUTH_LOG_FORMAT": "xml"}, "ONEAUTH_LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_trailing_slash_is_trimmed_from_public_url() -> None:
    assert Settings.from_env({"ONEAUTH_PUBLIC_URL": "https://a.example/"}).public_url == (
        "https://a.example"
    )


def test_hash_threads_share_the_cores_among_server_workers() -> None:
    from oneauth.cli.serve import hash_threads

    assert hash_threads(2, cores=2) == 1
    assert hash_threads(1, cores=4) == 4
    assert hash_threads(3, cores=4) == 2
    assert hash_threads(8, cores=2) == 1
