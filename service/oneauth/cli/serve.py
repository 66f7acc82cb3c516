"""``oneauth serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

import uvicorn

from oneauth.cli.common import fail, load_settings
from oneauth.db import ops, roles
from oneauth.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP service",
        description="Serve the API with uvicorn (settings from ONEAUTH_*).",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (production: one per core; default 1)",
    )
    p.set_defaults(func=cmd_serve)


def hash_threads(workers: int, cores: int | None = None) -> int:
    """argon2 threads per worker process so that all workers together use each core once."""
    cores = cores or os.cpu_count() or 1
    return max(1, -(-cores // max(1, workers)))


def cmd_serve(args: argparse.Namespace) -> None:
    settings = load_settings()  # fail here, once, with a clear message
    serve(settings, workers=max(1, args.workers or os.cpu_count() or 1))


def serve(settings: Settings, *, workers: int = 1) -> None:
    """Run uvicorn; its workers build the app from exactly these settings.

    uvicorn's factory runs in each worker and reads the environment, so the
    settings resolved here (the embedded database's URLs, argon2 threads) are
    handed over as ONEAUTH_* variables before any worker starts (item 12).
    """
    if not settings.password_hash_threads:
        # Share the cores among the workers instead of each process running
        # one argon2 thread per core.
        settings = replace(settings, password_hash_threads=hash_threads(workers))
    with ops.connect(settings.database_url) as conn:
        try:
            roles.check_service_role(conn)  # D1, as one line before any worker starts
        except roles.UnsafeRole as exc:
            fail(str(exc))
    os.environ.update(settings.to_environ())
    uvicorn.run(
        "oneauth.asgi:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        access_log=False,  # our RequestContext logs one line per request
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )
