"""The ``oneauth`` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import new_app_id
from oneauth.settings import Settings


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_PUBLIC_URL": "https://auth.example.com",
    }
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_provision_list_show_suspend_resume_delete(settings: Settings) -> None:
    app_id = new_app_id("cli")
    created = run(settings, "apps", "provision", app_id, "--name", "CLI Shop", "--json")
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["created"] is True
    assert body["issuer"] == f"https://auth.example.com/apps/{app_id}"
    assert body["schema"] == "app_" + app_id.replace("-", "_")

    again = run(settings, "apps", "provision", app_id, "--name", "CLI Shop")
    assert again.returncode == 0
    assert "already provisioned" in again.stdout
    assert f"issuer:  https://auth.example.com/apps/{app_id}" in again.stdout

    conflict = run(settings, "apps", "provision", app_id, "--name", "Other")
    assert conflict.returncode == 1
    assert "exists with name" in conflict.stderr

    listed = run(settings, "apps", "list")
    assert listed.returncode == 0
    assert app_id in listed.stdout
    shown = json.loads(run(settings, "apps", "show", app_id, "--json").stdout)
    assert shown["status"] == "active"

    assert "is suspended" in run(settings, "apps", "suspend", app_id).stdout
    assert json.loads(run(settings, "apps", "show", app_id, "--json").stdout)["status"] == (
        "suspended"
    )
    assert "is active" in run(settings, "apps", "resume", app_id).stdout

    refused = run(settings, "apps", "delete", app_id)
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    deleted = run(settings, "apps", "delete", app_id, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert app_id not in run(settings, "apps", "list").stdout
    assert app_id in run(settings, "apps", "list", "--all").stdout


@pytest.mark.parametrize("app_id", ["../x", "a;drop schema oneauth", "APP"])
def test_hostile_ids_get_a_clear_error(settings: Settings, app_id: str) -> None:
    result = run(settings, "apps", "provision", app_id, "--name", "x")
    assert result.returncode == 1
    assert result.stderr.startswith("error: app_id must")
    assert "Traceback" not in result.stderr


def test_migrate_reports_progress_and_summary(settings: Settings) -> None:
    run(settings, "apps", "provision", new_app_id("cli"), "--name", "M")
    result = run(settings, "migrate")
    assert result.returncode == 0, result.stderr
    assert "control schema: up to date" in result.stdout
    assert "0 failed" in result.stdout
    assert "[1/" in result.stdout


def test_bad_configuration_is_one_clear_line(settings: Settings) -> None:
    env = {
        **os.environ,
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_POOL_MAX_SIZE": "lots",
    }
    result = subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", "apps", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: configuration: ONEAUTH_POOL_MAX_SIZE: expected an integer, got 'lots'"
    )


def test_unreachable_database_is_a_clear_error() -> None:
    settings = Settings(database_url="postgresql://nobody:pw@127.0.0.1:1/none")
    result = run(settings, "apps", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("error: database unreachable")


@pytest.mark.parametrize("args", [[], ["apps"], ["migrate"], ["dev"], ["db", "bootstrap"]])
def test_help_texts(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args, "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert "usage: oneauth" in result.stdout
