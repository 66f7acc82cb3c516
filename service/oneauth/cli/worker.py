"""``oneauth worker``: the email and webhook delivery workers and the audit sealer, apart
from the HTTP service.

Use it with ``ONEAUTH_EMAIL_WORKER=off`` and ``ONEAUTH_AUDIT_SEALER=off`` on the
service processes (any number of workers may run: claims skip rows another
worker holds; one sealer leads per app). ``--once`` delivers
what is due now in every app and exits (cron, smoke tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from oneauth.cli.common import load_settings
from oneauth.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="run the email and webhook delivery workers",
        description="Deliver queued email of every app (settings from ONEAUTH_*).",
    )
    p.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> None:
    settings = load_settings()
    asyncio.run(run(settings, once=args.once))


async def run(settings: Settings, *, once: bool = False) -> None:
    from oneauth.apps.dek import KeyRing, SyncLoader
    from oneauth.apps.registry import CHANNEL as registry_channel
    from oneauth.apps.registry import Registry
    from oneauth.auditchain.sealer import Sealer
    from oneauth.db.notify import Notifier
    from oneauth.db.pool import create_app_pools, create_pool
    from oneauth.db.router import Router
    from oneauth.mail.outbox import CHANNEL as outbox_channel
    from oneauth.mail.worker import DeliveryWorker
    from oneauth.tokens.keystore import CHANNEL as keys_channel
    from oneauth.tokens.keystore import KeyStore
    from oneauth.webhooks.events import DELIVERIES_CHANNEL as webhooks_channel
    from oneauth.webhooks.worker import WebhookWorker

    box = KeyRing.from_config(settings.master_key)
    box.loader = loader = SyncLoader(settings.database_url)
    pool = await create_pool(settings)
    app_pools = await create_app_pools(settings)
    try:
        registry = Registry(pool, ttl=settings.registry_cache_ttl, keyring=box)
        router = Router(
            app_pools, registry, max_apps_per_connection=settings.pool_max_apps_per_connection
        )
        worker = DeliveryWorker.from_settings(settings, pool, registry, router, box)
        keys = KeyStore(box, issuer_for=settings.issuer_for)
        sealer = Sealer.from_settings(settings, pool, registry, router, keys, box)
        hooks = WebhookWorker.from_settings(settings, pool, registry, router, box)
        if once:
            report = await worker.deliver_all()
            sealed = await sealer.seal_all()
            print(
                f"sent {report.sent}, retrying {report.retried}, dead {report.dead},"
                f" expired {report.expired}; audit rows sealed {sealed}"
            )
            report = await hooks.deliver_all()
            print(
                f"webhooks: delivered {report.sent}, retrying {report.retried}, dead {report.dead}"
            )
            return
        notifier = Notifier(settings.database_url)
        notifier.subscribe(registry_channel, registry.on_change)
        notifier.subscribe(outbox_channel, worker.on_notify)
        notifier.subscribe(webhooks_channel, hooks.on_notify)
        await notifier.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        notifier.subscribe(keys_channel, keys.on_change)
        await worker.start()
        await sealer.start()
        await hooks.start()
        print(f"oneauth worker: delivering with the {worker.backend.name} backend", flush=True)
        try:
            await stop.wait()
        finally:
            await sealer.stop()
            await hooks.stop()
            await worker.stop()
            await notifier.stop()
    finally:
        loader.close()
        await app_pools.close()
        await pool.close()
