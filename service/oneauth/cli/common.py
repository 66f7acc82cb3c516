"""Helpers shared by CLI commands: settings, connections, output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from oneauth import logs
from oneauth.settings import Settings, SettingsError


class CliError(Exception):
    """Printed as ``error: <message>`` with exit status 1."""


EMBEDDED_DATA_DIR = Path(".data")


def load_settings() -> Settings:
    """Settings from the environment.

    Outside production, with no ONEAUTH_DATABASE_URL and an embedded cluster
    under ``.data/`` (made by ``make run``), the CLI uses that cluster, so
    ``oneauth apps list`` finds what ``make provision-app`` created.
    """
    environ = dict(os.environ)
    if (
        not environ.get("ONEAUTH_DATABASE_URL")
        and environ.get("ONEAUTH_ENV", "development") != "production"
        and (EMBEDDED_DATA_DIR / "pg" / "PG_VERSION").exists()
    ):
        from oneauth.cli.dev import embedded_database_url

        environ["ONEAUTH_DATABASE_URL"] = embedded_database_url(EMBEDDED_DATA_DIR)
        print("note: using the embedded development database under .data/", file=sys.stderr)
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        fail(f"configuration: {exc}")
    # Log lines (security events, library warnings) go to stderr, never into
    # a command's output on stdout.
    logs.configure(settings.log_format, settings.log_level)
    return settings


def fail(message: str, status: int = 1) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
