"""``oneauth retention run [--once] [--all]``: the retention worker apart from the service.

Use it with ``ONEAUTH_RETENTION=off`` on the service processes, or next to them:
one cycle runs at a time in the whole installation (a lease row), so any
number of these and of in-process workers may run. ``--once`` runs one cycle
and prints what it pruned (cron, smoke tests); ``--all`` visits every active
app, not only those the statistics name (after a restore, say).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from oneauth.cli.common import fail, load_settings, print_json
from oneauth.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "retention",
        help="delete expired sessions, codes, tokens, old mail and audit rows",
        description="Retention of every app's dead rows (settings from ONEAUTH_*).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    run_p = actions.add_parser("run", help="run the retention worker")
    run_p.add_argument("--once", action="store_true", help="run one cycle, then exit")
    run_p.add_argument("--all", action="store_true", help="visit every active app (with --once)")
    run_p.add_argument(
        "--json", action="store_true", help="print the cycle's report as JSON (with --once)"
    )
    run_p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> None:
    settings = load_settings()
    if args.json and not args.once:
        fail("--json goes with --once (one cycle and its report)")
    code = asyncio.run(run(settings, once=args.once, everything=args.all, as_json=args.json))
    if code:
        raise SystemExit(code)


async def run(
    settings: Settings, *, once: bool = False, everything: bool = False, as_json: bool = False
) -> int:
    from oneauth.apps.dek import KeyRing, SyncLoader
    from oneauth.apps.registry import CHANNEL as registry_channel
    from oneauth.apps.registry import Registry
    from oneauth.db.notify import Notifier
    from oneauth.db.pool import create_app_pools, create_pool
    from oneauth.db.router import Router
    from oneauth.retention.worker import RetentionWorker
    from oneauth.tokens.keystore import CHANNEL as keys_channel
    from oneauth.tokens.keystore import KeyStore

    # The app data keys (K1) open the signing keys the prune checkpoints are signed with.
    box = KeyRing.from_config(settings.master_key)
    box.loader = loader = SyncLoader(settings.database_url)
    pool = await create_pool(settings)
    app_pools = await create_app_pools(settings)
    try:
        registry = Registry(pool, ttl=settings.registry_cache_ttl, keyring=box)
        router = Router(
            app_pools, registry, max_apps_per_connection=settings.pool_max_apps_per_connection
        )
        keys = KeyStore(box, issuer_for=settings.issuer_for)
        worker = RetentionWorker.from_settings(settings, pool, registry, router, keys, box)
        if once:
            report = await worker.run_once(everything=everything)
            if as_json:
                print_json(report.to_json())
            else:
                print(report.summary())
            return 0 if report.leader and not report.failed else 1
        notifier = Notifier(
            settings.listen_url,
            enabled=settings.listen,
            fallback_ttl=settings.listen_fallback_ttl,
        )
        notifier.subscribe(registry_channel, registry.on_change, cache=True)
        notifier.subscribe(keys_channel, keys.on_change, cache=True)
        await notifier.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await worker.start()
        print(f"oneauth retention: a cycle every {worker.config.interval:g} s", flush=True)
        try:
            await stop.wait()
        finally:
            await worker.stop()
            await notifier.stop()
        return 0
    finally:
        await app_pools.close()
        await pool.close()
        loader.close()
