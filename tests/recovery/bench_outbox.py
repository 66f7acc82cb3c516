"""Outbox throughput: messages per second from the outbox to a local SMTP sink.

Run: ``.venv/bin/python tests/recovery/bench_outbox.py [messages] [apps]``. Not
collected by pytest. Starts a throwaway Postgres (or uses TEST_DATABASE_URL as
an admin URL), provisions ``apps`` apps, queues ``messages`` reset mails spread
over them (as the request path does: sealed secrets, NOTIFY), then times one
``DeliveryWorker.deliver_all()`` into an aiosmtpd sink on a loopback port: claim
with SKIP LOCKED, open the secrets, render text + HTML, SMTP, mark sent (one
transaction per message, see ``mail/worker.py``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import time
from typing import Any

from aiosmtpd.smtp import SMTP as SmtpServer

from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.registry import Registry
from oneauth.db import ops
from oneauth.db.bootstrap import bootstrap
from oneauth.db.pool import create_pool
from oneauth.db.router import Router
from oneauth.localpg import LocalPostgres, scratch_dir
from oneauth.mail import outbox
from oneauth.mail.backends import SmtpBackend
from oneauth.mail.worker import DeliveryWorker, WorkerConfig
from oneauth.secretbox import SecretBox
from oneauth.settings import Settings


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


async def bench(dsn: str, service_dsn: str, messages: int, apps: int) -> None:
    migrate_all(dsn)
    settings = Settings(
        env="test",
        database_url=service_dsn,
        operator_database_url=dsn,
        pool_min_size=2,
        pool_max_size=10,
    )
    with ops.connect(dsn) as conn:
        records = [
            lifecycle.provision(
                conn, settings, f"bench-{i}-{secrets.token_hex(3)}", f"Bench {i}"
            ).app
            for i in range(apps)
        ]
    pool = await create_pool(settings)
    registry = Registry(pool)
    router = Router(pool, registry)
    box = SecretBox.from_config(settings.master_key)
    for n, app in enumerate(records):
        async with router.enter(app) as conn:
            for i in range(n, messages, apps):
                to = f"user{i}@example.com"
                draft = outbox.draft(
                    box,
                    app.app_id,
                    "reset_password",
                    to,
                    context={"link_minutes": 30, "code_minutes": 10},
                    secrets={
                        "link": f"https://x/reset?token={secrets.token_urlsafe(32)}",
                        "code": "123456",
                    },
                    max_attempts=8,
                    ttl=1800,
                )
                await outbox.queue(conn, app.app_id, to, draft)
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(
        lambda: SmtpServer(sink, hostname="sink"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    worker = DeliveryWorker(
        settings,
        pool,
        registry,
        router,
        box,
        SmtpBackend(host="127.0.0.1", port=port, tls="none", timeout=10),
        WorkerConfig(batch_size=100, concurrency=4),
    )
    start = time.perf_counter()
    report = await worker.deliver_all()
    elapsed = time.perf_counter() - start
    server.close()
    await pool.close()
    assert report.sent == messages == sink.count, (report, sink.count)
    print(
        f"{messages} messages over {apps} apps: {elapsed:.2f} s,"
        f" {messages / elapsed:.0f} messages/s (worker and sink share one process)"
    )


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    apps = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    admin = os.environ.get("TEST_DATABASE_URL")
    root = None
    cluster = None
    if admin is None:
        root = scratch_dir("oneauth-bench-pg-")
        cluster = LocalPostgres(root / "data", fast=True)
        cluster.start()
        admin = cluster.admin_dsn()
    try:
        suffix = secrets.token_hex(3)
        made = bootstrap(
            admin,
            database=f"oneauth_bench_{suffix}",
            operator_role=f"oneauth_bench_{suffix}",
            operator_password=secrets.token_urlsafe(16),
            service_role=f"oneauth_bench_{suffix}_service",
            service_password=secrets.token_urlsafe(16),
        )
        asyncio.run(bench(made.operator_dsn, made.service_dsn, messages, apps))
    finally:
        if cluster is not None:
            cluster.destroy()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
