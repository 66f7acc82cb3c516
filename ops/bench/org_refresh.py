"""Refresh with an organization switch beside a plain refresh; token size at 50 roles (issue 13).

    python -m ops.bench.org_refresh [--families N] [--duration S] [--connections C]

A throwaway Postgres (the harness's cluster), one app, the service under
uvicorn with one worker per core. ``--connections`` accounts sign up through
the public API and join two organizations (rows written in the app's context,
as the org services do). Each concurrent client then keeps one refresh family
going for ``--duration`` seconds, one scenario at a time, alternating:

* ``plain``: ``grant_type=refresh_token`` of a family without an org;
* ``in-org``: the same, for a family that is at an org (claims with org roles);
* ``switch``: every refresh names the other org (``organization_id``), so
  every one switches the family (claims, ``sessions.org_id`` update).

Target: ``switch`` within 1.25x of ``plain`` (rate and p50). The load
generator is Python (httpx) on the same machine for every scenario: the
figures compare them, they are not the service's ceiling.

Token size: the access token of a user with no role, with 50 app roles
(``billing-admin-07``-like names), the same in an org as admin, and with the
50 roles' permissions too (one each, ``invoice:read-07``-like).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from ops.bench import cluster as bench_cluster
from ops.bench import servers
from ops.bench.bank import PASSWORD
from ops.bench.stats import percentile

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.localpg import free_port
from oneauth.settings import Settings

APP_ID = "bench-orgs"
SIZE_APP_ID = "bench-orgs-size"
PERMS_APP_ID = "bench-orgs-perms"  # token_permissions on: every token has permissions
SCENARIOS = ("plain", "in-org", "switch")


@dataclass
class Family:
    user_id: str
    refresh_token: str
    at: str | None = None  # the org the family is at


@dataclass
class Result:
    name: str
    refreshes: int
    errors: int
    seconds: float
    latencies_ms: list[float]


def _orgs(conn: Any, app: AppRecord, user_ids: list[str], roles: int = 0) -> list[str]:
    """Two orgs with every user a member (role ``member``); ``roles`` app roles
    (with one permission each) for every user, and admin of the first org."""
    ids = ["org_" + secrets.token_urlsafe(16) for _ in range(2)]
    users = [uuid.UUID(u) for u in user_ids]
    with conn.transaction(), ops.app_context(conn, app.names):
        for n, org_id in enumerate(ids):
            conn.execute(
                "INSERT INTO organizations (id, slug, name) VALUES (%s, %s, %s)",
                (org_id, f"org-{n}", f"Org {n}"),
            )
            conn.execute(
                "INSERT INTO org_members (org_id, user_id, joined_via)"
                " SELECT %s, unnest(%s::uuid[]), 'operator'",
                (org_id, users),
            )
            conn.execute(
                "INSERT INTO org_member_roles (org_id, user_id, org_role_id)"
                " SELECT %s, u, r.id FROM unnest(%s::uuid[]) u, org_roles r"
                " WHERE r.org_id IS NULL AND r.name = %s",
                (org_id, users, "admin" if roles and n == 0 else "member"),
            )
        for i in range(roles):
            conn.execute("INSERT INTO permissions (name) VALUES (%s)", (f"invoice:read-{i:02d}",))
            role_id = conn.execute(
                "INSERT INTO roles (name) VALUES (%s) RETURNING id", (f"billing-admin-{i:02d}",)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO role_permissions (role_id, permission) VALUES (%s, %s)",
                (role_id, f"invoice:read-{i:02d}"),
            )
            conn.execute(
                "INSERT INTO user_roles (user_id, role_id) SELECT unnest(%s::uuid[]), %s",
                (users, role_id),
            )
    return ids


async def _signup(http: httpx.AsyncClient, app_id: str, email: str) -> dict[str, Any]:
    r = await http.post(f"/apps/{app_id}/v1/signup", json={"email": email, "password": PASSWORD})
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


async def _client_id(http: httpx.AsyncClient, app_id: str) -> str:
    r = await http.get(f"/apps/{app_id}/v1/app")
    r.raise_for_status()
    value: str = r.json()["default_client_id"]
    return value


async def _refresh(
    http: httpx.AsyncClient, app_id: str, client_id: str, family: Family, org: str | None
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": family.refresh_token}
    data["client_id"] = client_id
    if org is not None:
        data["organization_id"] = org
    return await http.post(f"/apps/{app_id}/oauth/token", data=data)


async def _measure(
    http: httpx.AsyncClient,
    client_id: str,
    families: list[Family],
    orgs: list[str],
    name: str,
    seconds: float,
) -> Result:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def one(family: Family) -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            org = None
            if name == "switch":
                org = orgs[1] if family.at == orgs[0] else orgs[0]
            t0 = time.perf_counter()
            r = await _refresh(http, APP_ID, client_id, family, org)
            if r.status_code == 200:
                latencies.append((time.perf_counter() - t0) * 1000)
                family.refresh_token = r.json()["refresh_token"]
                family.at = org if org is not None else family.at
            else:
                errors += 1
                return  # a family that failed stops (its token may be spent)

    started = time.monotonic()
    await asyncio.gather(*(one(f) for f in families))
    return Result(name, len(latencies), errors, time.monotonic() - started, latencies)


async def _token_sizes(
    http: httpx.AsyncClient, conn: Any, app: AppRecord, tag: str
) -> dict[str, int]:
    """Access token sizes (bytes): no role; 50 app roles; 50 roles in an org as admin."""
    client_id = await _client_id(http, app.app_id)
    body = await _signup(http, app.app_id, f"fifty-{tag}@bench.example")
    sizes = {"no_roles": len(body["access_token"])}
    org = _orgs(conn, app, [body["user"]["id"]], roles=50)[0]
    family = Family(body["user"]["id"], body["refresh_token"])
    for label, at in (("50_roles", None), ("50_roles_org_admin", org)):
        r = await _refresh(http, app.app_id, client_id, family, at)
        r.raise_for_status()
        family.refresh_token = r.json()["refresh_token"]
        sizes[label] = len(r.json()["access_token"])
    return sizes


async def _run(
    base_url: str, args: argparse.Namespace, conn: Any, apps: dict[str, AppRecord]
) -> tuple[list[Result], dict[str, dict[str, int]]]:
    limits = httpx.Limits(max_connections=args.connections * 3 + 8)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        client_id = await _client_id(http, APP_ID)
        gate = asyncio.Semaphore(8)

        async def signup(i: int, tag: str) -> Family:
            async with gate:
                body = await _signup(http, APP_ID, f"{tag}-{i}@bench.example")
            return Family(body["user"]["id"], body["refresh_token"])

        per = {
            name: list(await asyncio.gather(*(signup(i, name) for i in range(args.connections))))
            for name in SCENARIOS
        }
        orgs = _orgs(conn, apps[APP_ID], [f.user_id for fs in per.values() for f in fs])
        for family in per["in-org"]:  # these families are at the first org
            r = await _refresh(http, APP_ID, client_id, family, orgs[0])
            r.raise_for_status()
            family.refresh_token, family.at = r.json()["refresh_token"], orgs[0]
        results: list[Result] = []
        for _ in range(args.reps):
            for name in SCENARIOS:  # alternating: drift hits every scenario
                results.append(
                    await _measure(http, client_id, per[name], orgs, name, args.duration)
                )
        sizes = {
            "roles": await _token_sizes(http, conn, apps[SIZE_APP_ID], "roles"),
            "roles_and_permissions": await _token_sizes(
                http, conn, apps[PERMS_APP_ID], "permissions"
            ),
        }
        return results, sizes


def _summary(results: list[Result]) -> list[dict[str, Any]]:
    out = []
    for name in SCENARIOS:
        runs = [r for r in results if r.name == name]
        merged = [x for r in runs for x in r.latencies_ms]
        rates = [r.refreshes / r.seconds if r.seconds else 0.0 for r in runs]
        out.append(
            {
                "scenario": name,
                "rate_median": statistics.median(rates),
                "rates": [round(x, 1) for x in rates],
                "errors": sum(r.errors for r in runs),
                "p50_ms": percentile(merged, 50) if merged else None,
                "p99_ms": percentile(merged, 99) if merged else None,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.org_refresh",
        description="Refresh with an org switch beside a plain refresh; token size at 50 roles.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--reps", type=int, default=2, help="measurements of each (alternating)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent families")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    args = parser.parse_args(argv)

    cl = bench_cluster.start(None, durable=False)
    try:
        port = free_port()
        settings = Settings(
            env="development",
            database_url=cl.dsn,
            public_url=f"http://127.0.0.1:{port}",
            master_key=cl.master_key,
        )
        with ops.connect(cl.dsn) as conn:
            apps = {
                APP_ID: lifecycle.provision(conn, settings, APP_ID, "Bench orgs").app,
                SIZE_APP_ID: lifecycle.provision(conn, settings, SIZE_APP_ID, "Bench size").app,
                PERMS_APP_ID: lifecycle.provision(
                    conn,
                    settings,
                    PERMS_APP_ID,
                    "Bench permissions",
                    app_settings={"token_permissions": True},
                ).app,
            }
            with servers.start_service(
                dsn=cl.service_dsn, master_key=cl.master_key, workers=args.workers, port=port
            ):
                results, sizes = asyncio.run(_run(f"http://127.0.0.1:{port}", args, conn, apps))
    finally:
        cl.close()
    summary = _summary(results)
    base = summary[0]
    for row in summary:
        row["p50_vs_plain"] = row["p50_ms"] / base["p50_ms"] if base["p50_ms"] else None
        row["rate_vs_plain"] = (
            base["rate_median"] / row["rate_median"] if row["rate_median"] else None
        )
        print(
            f"{row['scenario']:>8}: {row['rate_median']:.1f} refreshes/s (runs {row['rates']}),"
            f" p50 {row['p50_ms']:.1f} ms ({row['p50_vs_plain']:.2f}x plain),"
            f" p99 {row['p99_ms']:.1f} ms, errors {row['errors']}"
        )
    for kind, figures in sizes.items():
        print(f"access token bytes ({kind}): {figures}")
    if args.out:
        body = {"refresh": summary, "access_token_bytes": sizes}
        args.out.write_text(json.dumps(body, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
