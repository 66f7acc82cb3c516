"""Steady load for the fault tests: refresh chains, logins and client_credentials.

Every request is recorded (when, how long, status, Retry-After, transport
error), and every refresh chain keeps the token it holds: after the fault the
suite checks each chain against the database (``check_chains``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .rig import PASSWORD, Rig


@dataclass
class Outcome:
    kind: str
    started: float
    ended: float
    status: int | None  # None: a transport error (see ``error``)
    retry_after: str | None = None
    error: str | None = None
    body: str = ""

    @property
    def duration(self) -> float:
        return self.ended - self.started


@dataclass
class Chain:
    """One session's refresh tokens, as the client saw them."""

    email: str
    token: str
    session_token_hashes: list[bytes] = field(default_factory=list)
    spent: set[str] = field(default_factory=set)  # tokens that got a 200
    double_spent: list[str] = field(default_factory=list)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Load:
    rig: Rig
    base: str
    chains: list[Chain] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    issued_refresh: list[str] = field(default_factory=list)  # from every 200 login
    pause: float = 0.02
    timeout: float = 15.0

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=self.timeout)

    async def prepare(self, chains: int, users: int) -> None:
        async def one(http: httpx.AsyncClient, i: int) -> Chain:
            email = f"load{i}-{time.monotonic_ns()}@example.com"
            r = await http.post(
                f"/apps/{self.rig.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
            )
            assert r.status_code == 201, r.text
            return Chain(email, r.json()["refresh_token"])

        async with self.client() as http:
            made = await asyncio.gather(*(one(http, i) for i in range(max(chains, users))))
        self.chains.extend(made[:chains])
        self.emails = [c.email for c in self.chains][:users] or [self.chains[0].email]

    async def _send(self, http: httpx.AsyncClient, kind: str, **request: Any) -> Outcome:
        started = time.monotonic()
        try:
            r = await http.request(**request)
        except httpx.HTTPError as exc:
            out = Outcome(kind, started, time.monotonic(), None, error=type(exc).__name__)
        else:
            out = Outcome(
                kind,
                started,
                time.monotonic(),
                r.status_code,
                r.headers.get("retry-after"),
                body=r.text[:300],
            )
            out.json = r.json() if r.status_code == 200 else None  # type: ignore[attr-defined]
        self.outcomes.append(out)
        return out

    async def _refresher(self, chain: Chain, stop: asyncio.Event) -> None:
        async with self.client() as http:
            while not stop.is_set():
                out = await self._send(
                    http,
                    "refresh",
                    method="POST",
                    url=f"/apps/{self.rig.app_id}/oauth/token",
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": chain.token,
                        "client_id": self.rig.client_id,
                    },
                )
                if out.status == 200:
                    if chain.token in chain.spent:
                        chain.double_spent.append(chain.token)
                    chain.spent.add(chain.token)
                    chain.token = out.json["refresh_token"]  # type: ignore[attr-defined]
                await asyncio.sleep(self.pause)

    async def _login(self, index: int, stop: asyncio.Event) -> None:
        async with self.client() as http:
            n = index
            while not stop.is_set():
                email = self.emails[n % len(self.emails)]
                n += 1
                out = await self._send(
                    http,
                    "login",
                    method="POST",
                    url=f"/apps/{self.rig.app_id}/v1/login",
                    json={"email": email, "password": PASSWORD},
                )
                if out.status == 200:
                    self.issued_refresh.append(out.json["refresh_token"])  # type: ignore[attr-defined]
                await asyncio.sleep(self.pause * 5)

    async def _client_credentials(self, stop: asyncio.Event) -> None:
        async with self.client() as http:
            while not stop.is_set():
                await self._send(
                    http,
                    "client_credentials",
                    method="POST",
                    url=f"/apps/{self.rig.app_id}/oauth/token",
                    data={"grant_type": "client_credentials", "scope": "orders:read"},
                    auth=(self.rig.cc_id, self.rig.cc_secret),
                )
                await asyncio.sleep(self.pause)

    def start(self, stop: asyncio.Event, *, logins: int = 1, ccs: int = 2) -> asyncio.Future[Any]:
        tasks = [self._refresher(c, stop) for c in self.chains]
        tasks += [self._login(i, stop) for i in range(logins)]
        tasks += [self._client_credentials(stop) for _ in range(ccs)]
        return asyncio.gather(*tasks)


def check_chains(load: Load) -> dict[str, int]:
    """Every chain against the database: no token lost, none spent twice.

    The token a chain holds must be its session's only live refresh token (a
    200 whose successor was not stored, or a rotation applied twice, shows
    here); or the whole family is revoked, consistently. Every refresh token
    handed out by a 200 login must have been stored (A3).
    """
    rig = load.rig
    live = revoked = 0
    with rig.in_app() as conn:
        for chain in load.chains:
            assert not chain.double_spent, f"refresh tokens spent twice: {chain.double_spent}"
            row = conn.execute(
                "SELECT session_id, used_at IS NULL AND revoked_at IS NULL FROM refresh_tokens"
                " WHERE token_hash = %s",
                (token_hash(chain.token),),
            ).fetchone()
            assert row is not None, f"{chain.email}: the token the client holds was never stored"
            session_id, usable = row
            tokens = conn.execute(
                "SELECT count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL),"
                " count(*) FILTER (WHERE revoked_at IS NULL)"
                " FROM refresh_tokens WHERE session_id = %s",
                (session_id,),
            ).fetchone()
            assert tokens is not None
            ended = conn.execute(
                "SELECT revoked_at IS NOT NULL FROM sessions WHERE id = %s", (session_id,)
            ).fetchone()
            if usable:
                assert tokens[0] == 1, f"{chain.email}: {tokens[0]} live tokens in one family"
                live += 1
            else:
                assert ended is not None
                assert ended[0], f"{chain.email}: token lost, family alive"
                assert tokens[1] == 0, f"{chain.email}: family half revoked"
                revoked += 1
        for token in load.issued_refresh:
            stored = conn.execute(
                "SELECT 1 FROM refresh_tokens WHERE token_hash = %s", (token_hash(token),)
            ).fetchone()
            assert stored is not None, "a login answered 200 with a refresh token never stored"
    return {"live": live, "revoked": revoked}


async def final_refresh(load: Load) -> None:
    """Each live chain's token still works once more."""
    async with load.client() as http:
        for chain in load.chains:
            r = await http.post(
                f"/apps/{load.rig.app_id}/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": chain.token,
                    "client_id": load.rig.client_id,
                },
            )
            assert r.status_code == 200, (chain.email, r.text)
            chain.token = r.json()["refresh_token"]
