"""Helpers shared by CLI commands: settings, connections, output."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from oneauth import logs
from oneauth.settings import Settings, SettingsError


class CliError(Exception):
    """Printed as ``error: <message>`` with exit status 1."""


EMBEDDED_DATA_DIR = Path(".data")


def load_settings() -> Settings:
    """Settings from the environment.

    Outside production, with neither ONEAUTH_DATABASE_URL nor
    ONEAUTH_OPERATOR_DATABASE_URL set and an embedded cluster under ``.data/``
    (made by ``make run``), the CLI uses that cluster, so ``oneauth apps list``
    finds what ``make provision-app`` created. A stopped cluster is started, and
    the CLI says so on stderr.
    """
    environ = os.environ
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        fail(f"configuration: {exc}")
    if (
        not environ.get("ONEAUTH_DATABASE_URL")
        and not environ.get("ONEAUTH_OPERATOR_DATABASE_URL")
        and not settings.is_production
        and (EMBEDDED_DATA_DIR / "pg" / "PG_VERSION").exists()
    ):
        from oneauth.cli.dev import embedded_database

        urls = embedded_database(EMBEDDED_DATA_DIR, port=settings.dev_db_port)
        settings = replace(
            settings, database_url=urls.service_dsn, operator_database_url=urls.operator_dsn
        )
    # Log lines (security events, library warnings) go to stderr, never into
    # a command's output on stdout.
    logs.configure(settings.log_format, settings.log_level)
    return settings


def fail(message: str, status: int = 1) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
