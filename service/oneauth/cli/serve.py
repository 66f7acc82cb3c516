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


def cmd_serve(args: argparse.Namespace) -> None:
    settings = load_settings()  # fail here, once, with a clear message
    serve(settings.host, settings.port, workers=max(1, args.workers or os.cpu_count() or 1))


def serve(host: str, port: int, *, workers: int = 1) -> None:
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
