"""``oneauth serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import os

import uvicorn

from oneauth.cli.common import load_settings


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
    serve(settings.host, settings.port, workers=max(1, args.workers or os.cpu_count() or 1))


def serve(host: str, port: int, *, workers: int = 1) -> None:
    if not os.environ.get("ONEAUTH_PASSWORD_HASH_THREADS", "").strip("0 "):
        # The workers read this from the environment: share the cores among them
        # instead of each process running one argon2 thread per core.
        os.environ["ONEAUTH_PASSWORD_HASH_THREADS"] = str(hash_threads(workers))
    uvicorn.run(
        "oneauth.asgi:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # our RequestContext logs one line per request
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )
