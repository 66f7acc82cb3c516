"""``oneauth webhooks``: an app's webhook endpoints and deliveries (issue 15).

The same service functions as the admin API (``oneauth.webhooks.endpoints``),
as the operator, in one transaction of the app's context; each change is
audited (``webhook.*`` with actor ``operator``). The signing secret is printed
once, at ``create``.
"""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from oneauth import audit
from oneauth.apps.dek import KeyRing
from oneauth.apps.models import AppRecord
from oneauth.cli.appctx import run_in_app
from oneauth.cli.common import fail, print_json
from oneauth.settings import Settings
from oneauth.webhooks import EVENT_TYPES, endpoints


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "webhooks",
        help="webhook endpoints of an app",
        description="Webhook endpoints receive an app's events (signed, Standard Webhooks).",
    )
    cmds = group.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")

    p = cmds.add_parser("create", help="add an endpoint (prints its secret once)")
    p.add_argument("--url", required=True, help="https URL (http://127.0.0.1 in dev/test)")
    p.add_argument(
        "--events",
        required=True,
        help=f"comma-separated event types: {', '.join(EVENT_TYPES)}",
    )
    p.add_argument("--description", default="")
    _common(p)
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("list", help="list endpoints")
    _common(p)
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("delete", help="delete an endpoint and its deliveries")
    p.add_argument("endpoint", metavar="ENDPOINT_ID")
    _common(p)
    p.set_defaults(func=cmd_delete)

    p = cmds.add_parser("deliveries", help="an endpoint's deliveries, newest first")
    p.add_argument("endpoint", metavar="ENDPOINT_ID")
    p.add_argument("--status", choices=endpoints.DELIVERY_STATUSES)
    p.add_argument("--limit", type=int, default=50)
    _common(p)
    p.set_defaults(func=cmd_deliveries)

    p = cmds.add_parser("replay", help="queue a delivery's event to its endpoint again")
    p.add_argument("delivery", metavar="DELIVERY_ID", type=int)
    _common(p)
    p.set_defaults(func=cmd_replay)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", required=True, help="the app")
    p.add_argument("--json", action="store_true", help="print JSON")


def _shown(e: endpoints.Endpoint) -> dict[str, Any]:
    return {
        "id": e.id,
        "url": e.url,
        "event_types": list(e.event_types),
        "enabled": e.enabled,
        "description": e.description,
        "created_at": e.created_at.isoformat(),
    }


def _delivery(d: endpoints.Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "replay_of": d.replay_of,
        "created_at": d.created_at.isoformat(),
    }


async def _audit(conn: asyncpg.Connection, event: str, target_type: str, target_id: str) -> None:
    await audit.record(
        conn,
        event,
        "success",
        audit.SYSTEM,
        actor_type="operator",
        actor_id="cli",
        target_type=target_type,
        target_id=target_id,
    )


def cmd_create(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> Any:
        box = KeyRing.with_apps(settings.master_key, app)
        endpoint, secret = await endpoints.create(
            conn,
            box,
            settings,
            app.app_id,
            url=args.url,
            event_types=[t.strip() for t in args.events.split(",") if t.strip()],
            description=args.description,
        )
        await _audit(conn, "webhook.endpoint.create", "webhook_endpoint", endpoint.id)
        return {**_shown(endpoint), "secret": secret}

    made = run_in_app(args.app, work)
    if args.json:
        print_json(made)
    else:
        print(f"endpoint {made['id']} -> {made['url']}")
        print(f"secret (shown once, keep it): {made['secret']}")


def cmd_list(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> Any:
        found: list[endpoints.Endpoint] = []
        after = None
        while True:
            page = await endpoints.list_page(conn, after=after, limit=200)
            found += page
            if len(page) < 200:
                return [_shown(e) for e in found]
            after = (page[-1].created_at, page[-1].id)

    rows = run_in_app(args.app, work)
    if args.json:
        print_json(rows)
        return
    for e in rows:
        state = "enabled" if e["enabled"] else "disabled"
        print(f"{e['id']}  {state:8}  {e['url']}  {','.join(e['event_types'])}")


def cmd_delete(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> bool:
        done = await endpoints.delete(conn, app.app_id, args.endpoint)
        if done:
            await _audit(conn, "webhook.endpoint.delete", "webhook_endpoint", args.endpoint)
        return done

    if not run_in_app(args.app, work):
        fail(f"no webhook endpoint {args.endpoint!r} in app {args.app!r}")
    print(f"deleted {args.endpoint}")


def cmd_deliveries(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> Any:
        if await endpoints.get(conn, args.endpoint) is None:
            return None
        rows = await endpoints.list_deliveries(
            conn, args.endpoint, status=args.status, limit=max(1, min(args.limit, 200))
        )
        return [_delivery(d) for d in rows]

    rows = run_in_app(args.app, work)
    if rows is None:
        fail(f"no webhook endpoint {args.endpoint!r} in app {args.app!r}")
    if args.json:
        print_json(rows)
        return
    for d in rows:
        print(
            f"{d['id']}  {d['status']:9}  {d['event_type']:22}  attempts {d['attempts']}"
            f"  {d['last_status'] or ''} {d['last_error'] or ''}".rstrip()
        )


def cmd_replay(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> Any:
        again = await endpoints.replay(conn, app.app_id, args.delivery)
        if again is not None:
            await _audit(conn, "webhook.delivery.replay", "webhook_delivery", str(args.delivery))
        return None if again is None else _delivery(again)

    row = run_in_app(args.app, work)
    if row is None:
        fail(f"no webhook delivery {args.delivery} in app {args.app!r}")
    if args.json:
        print_json(row)
    else:
        print(f"queued delivery {row['id']} (replay of {args.delivery})")
