"""Entry point of the ``oneauth`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import psycopg

from oneauth import __version__
from oneauth.cli import (
    apps,
    audit,
    clients,
    completion,
    db,
    dev,
    keys,
    migrate,
    orgs,
    platform,
    providers,
    retention,
    roles,
    serve,
    users,
    webhooks,
    worker,
)
from oneauth.cli.common import fail


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oneauth",
        description="oneauth: one auth backend for many apps, each with its own identity. "
        "Settings come from ONEAUTH_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"oneauth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        serve,
        migrate,
        apps,
        clients,
        providers,
        keys,
        db,
        dev,
        worker,
        roles,
        users,
        orgs,
        platform,
        audit,
        webhooks,
        completion,
        retention,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except psycopg.OperationalError as exc:
        fail(f"database unreachable: {str(exc).strip()}")
    except psycopg.Error as exc:
        fail(f"database: {str(exc).strip()}")


if __name__ == "__main__":
    main()
