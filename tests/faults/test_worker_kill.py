"""A uvicorn worker killed with SIGKILL mid-request (Q2).

Refreshes are held in flight by a lock on ``refresh_tokens`` (so the kill
lands mid-request, every time), then the worker holding at least one of them
is SIGKILLed. Its clients see a connection error, never a token: its
transactions never committed, so each of their refresh tokens is still the
live one and works afterwards (A3: no token whose grant was not stored). The
other worker answers its held requests with 200 and stored successors, and
keeps serving new requests at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import psycopg

from .load import Load, check_chains, final_refresh
from .rig import Rig
from .test_pool_exhaustion import _waiting_for_locks


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _owner_of_ports(pids: list[int], ports: set[int]) -> dict[int, int]:
    """Which process owns the TCP socket with each local port (from /proc/net/tcp*)."""
    inode_of_port: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            port = int(cols[1].rsplit(":", 1)[1], 16)
            if port in ports:
                inode_of_port[port] = cols[9]
    owners = {}
    for pid in pids:
        inodes = _socket_inodes(pid)
        for port, inode in inode_of_port.items():
            if inode in inodes:
                owners[port] = pid
    return owners


async def test_sigkill_of_a_worker_mid_request(rig: Rig) -> None:
    server = rig.serve(workers=2, pool_min_size=1, pool_max_size=8)
    workers = server.workers()
    assert len(workers) == 2, workers
    load = Load(rig, server.base)
    await load.prepare(chains=8, users=0)

    async def refresh(token: str) -> httpx.Response | str:
        # One connection per request: spread over both workers' accept loops.
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            try:
                return await http.post(
                    f"/apps/{rig.app_id}/oauth/token",
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": token,
                        "client_id": rig.client_id,
                    },
                )
            except httpx.TransportError as exc:
                return type(exc).__name__

    with rig.in_app() as lock:
        lock.execute("LOCK TABLE refresh_tokens IN ACCESS EXCLUSIVE MODE")
        held = [asyncio.create_task(refresh(c.token)) for c in load.chains]
        try:
            await _waiting_for_locks(rig, len(load.chains))
        except AssertionError:
            done = [t.result() for t in held if t.done()]
            raise AssertionError(f"{done} {server.tail()}") from None
        # The superuser sees every session's client port.
        with psycopg.connect(rig.cluster.admin_dsn()) as conn:
            ports = {
                int(r[0])
                for r in conn.execute(
                    "SELECT client_port FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND client_port IS NOT NULL"
                )
            }
        owners = _owner_of_ports(workers, ports)
        victim = max(workers, key=lambda pid: sum(1 for o in owners.values() if o == pid))
        assert victim in owners.values(), (owners, workers)
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(0.3)
    # The lock is gone. The other worker keeps serving at once, while uvicorn is
    # still starting the victim's replacement (seconds: imports, pools).
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        for _ in range(10):
            r = await http.post(
                f"/apps/{rig.app_id}/oauth/token",
                data={"grant_type": "client_credentials", "scope": "orders:read"},
                auth=(rig.cc_id, rig.cc_secret),
            )
            assert r.status_code == 200, r.text
    results = await asyncio.gather(*held)

    lost = [c for c, r in zip(load.chains, results, strict=True) if isinstance(r, str)]
    assert lost, "no request was in flight on the killed worker"
    for chain, got in zip(load.chains, results, strict=True):
        if isinstance(got, httpx.Response):
            assert got.status_code == 200, got.text
            chain.token = got.json()["refresh_token"]
    # A3: the killed worker's grants were never stored, so nothing was spent:
    # each of its clients' old tokens is still its family's live token.
    check_chains(load)
    await final_refresh(load)
