"""``oneauth serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import uvicorn

from oneauth.cli.common import fail, load_settings
from oneauth.db import ops, roles
from oneauth.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP service",
        description=(
            "Serve the API with uvicorn (settings from ONEAUTH_*). With several workers, "
            "GET /metrics sums all of them (files in ONEAUTH_METRICS_DIR, else a "
            "temporary directory, emptied at start)."
        ),
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


def uvicorn_options(host: str, port: int, workers: int) -> dict[str, Any]:
    return {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        # Our RequestContext logs one line per request; uvicorn's access lines are
        # info, below this level (uvicorn then skips them), and anything above it
        # reaches our JSON handler. access_log=False would leave uvicorn.access
        # without any handler, so its warnings would bypass the formatter.
        "access_log": True,
        "log_level": "warning",
        # Logging is ours (logs.configure): uvicorn's records go through the root
        # handler as JSON instead of uvicorn's own plain-text handlers.
        "log_config": None,
        "server_header": False,
        # The client address is derived in one place, from ONEAUTH_TRUSTED_PROXIES
        # (http/middleware.py); uvicorn must not rewrite it first (nor read
        # FORWARDED_ALLOW_IPS from the environment).
        "proxy_headers": False,
        "forwarded_allow_ips": "",
    }


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
    with metrics_dir(settings, workers):
        options = uvicorn_options(settings.host, settings.port, workers)
        uvicorn.run("oneauth.asgi:create_app", **options)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def metrics_dir(settings: Settings, workers: int) -> Iterator[str | None]:
    """One empty directory for the workers' metric files, named to them before they start.

    prometheus_client sums the files of every process in PROMETHEUS_MULTIPROC_DIR,
    so files left by an earlier run would be counted again: ONEAUTH_METRICS_DIR
    is emptied first, and without it a fresh temporary directory serves this run
    and is removed at exit. One worker keeps its figures in memory.
    """
    if workers <= 1 or not settings.metrics:
        os.environ.pop(MULTIPROC_ENV, None)
        yield None
        return
    if settings.metrics_dir:
        path, owned = settings.metrics_dir, False
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):  # only prometheus_client's files
                os.remove(os.path.join(path, name))
    else:
        path, owned = tempfile.mkdtemp(prefix="oneauth-metrics-"), True
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        if owned:
            shutil.rmtree(path, ignore_errors=True)
