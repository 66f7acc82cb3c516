"""Two concurrent refreshes of one token over real HTTP (uvicorn on a loopback port,
its own event loop and connection pool): both get the one successor, and the user
stays signed in (issue 10 item 6, S1)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from oneauth.apps.models import AppRecord

from ._support import PASSWORD, LiveServer


async def test_concurrent_refreshes_over_http_keep_the_family(
    live_op: LiveServer, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    base = f"/apps/{app.app_id}"
    async with httpx.AsyncClient(base_url=live_op.base_url, timeout=30) as http:
        client_id = (await http.get(f"{base}/v1/app")).json()["default_client_id"]
        for round_ in range(20):
            signed_up = await http.post(
                f"{base}/v1/signup",
                json={"email": f"live{round_}@example.com", "password": PASSWORD},
            )
            raw = signed_up.json()["refresh_token"]
            form = {"grant_type": "refresh_token", "refresh_token": raw, "client_id": client_id}
            results = await asyncio.gather(
                *(http.post(f"{base}/oauth/token", data=form) for _ in "ab")
            )
            seen = [(r.status_code, r.text[:200]) for r in results]
            # Both succeed with the one successor (S1: the second is a retry of the first).
            assert [r.status_code for r in results] == [200, 200], seen
            assert len({r.json()["refresh_token"] for r in results}) == 1, seen
            won = results[0].json()
            after = await http.post(
                f"{base}/oauth/token", data={**form, "refresh_token": won["refresh_token"]}
            )
            assert after.status_code == 200, after.text
