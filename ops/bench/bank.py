"""Accounts, clients and tokens the scenarios need, prepared before measuring.

* one bench user per active app (more in app 1 when there are fewer active
  apps than ``2 x connections``, so the refresh chains never run dry);
* each user's current refresh token (single-use: it rotates), kept across
  stages; a token lost by a run (in flight when wrk stopped) is replaced by
  one login;
* one confidential client per active app (client_credentials, introspection),
  created through ``oneauth.oauth.clients`` in the app's context;
* the facts of each app from ``GET /v1/app`` (default client, issuer, audience).

Preparation is not measured, and goes through the public HTTP API except for
the confidential clients (there is no HTTP API for clients).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ops.bench import setup_client as sc
from ops.bench.setup_client import Reply, SetupClient

from oneauth.apps import lifecycle
from oneauth.db import ops

# Passes the password policy: long, not on the common list, no email part.
PASSWORD = "Cobalt-harbor-lantern-7391"
CC_SCOPE = "bench:read"
PREP_DEADLINE = 600.0  # seconds for any one preparation step


class BankError(RuntimeError):
    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing  # the endpoint is not implemented (routing 404/405)


@dataclass
class AppInfo:
    app: str
    client_id: str  # the first-party public client (refresh grant)
    issuer: str
    audience: str
    cc_client_id: str = ""
    cc_secret: str = ""


@dataclass
class Account:
    app: str
    index: int
    refresh: str | None = None
    created: bool = False

    @property
    def email(self) -> str:
        return f"user{self.index}@{self.app}.bench.example"


def wanted_accounts(active_apps: Sequence[str], connections: int) -> list[tuple[str, int]]:
    """(app, index) pairs for a stage: one per app, spread so that at least
    2 x connections chains exist (each connection holds one in flight)."""
    need = max(len(active_apps), 2 * connections)
    per_app = math.ceil(need / len(active_apps))
    return [(app, i) for app in active_apps for i in range(per_app)][:need]


@dataclass
class Bank:
    apps: dict[str, AppInfo] = field(default_factory=dict)
    accounts: dict[tuple[str, int], Account] = field(default_factory=dict)
    log: Callable[[str], None] = print

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        return {
            "accounts": [asdict(a) for a in self.accounts.values()],
            "cc": {k: [v.cc_client_id, v.cc_secret] for k, v in self.apps.items() if v.cc_secret},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], log: Callable[[str], None]) -> Bank:
        bank = cls(log=log)
        for raw in state.get("accounts", []):
            acc = Account(**raw)
            bank.accounts[(acc.app, acc.index)] = acc
        bank._saved_cc = {k: (v[0], v[1]) for k, v in state.get("cc", {}).items()}
        return bank

    _saved_cc: dict[str, tuple[str, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ apps

    async def load_apps(self, client: SetupClient, apps: Iterable[str]) -> None:
        todo = [a for a in apps if a not in self.apps]

        async def one(app: str) -> tuple[str, Reply]:
            return app, await client.app_info(app)

        for app, reply in await sc.gather_bounded(todo, one, deadline_s=PREP_DEADLINE):
            if not reply.ok:
                raise BankError(
                    f"GET /apps/{app}/v1/app: HTTP {reply.status} {reply.body}",
                    missing=sc.missing_endpoint(reply),
                )
            client_id = reply.get("default_client_id")
            if not client_id:
                raise BankError(f"/apps/{app}/v1/app has no default_client_id: {reply.body}")
            info = AppInfo(
                app=app,
                client_id=str(client_id),
                issuer=str(reply.get("issuer")),
                audience=str(reply.get("audience") or ""),
            )
            if app in self._saved_cc:
                info.cc_client_id, info.cc_secret = self._saved_cc[app]
            self.apps[app] = info

    def create_cc_clients(self, dsn: str, apps: Iterable[str]) -> None:
        """A confidential client_credentials client per app that lacks one."""
        from oneauth.oauth import clients

        spec = clients.ClientSpec(
            name="bench service",
            kind="confidential",
            grant_types=frozenset({"client_credentials"}),
            scopes=frozenset({CC_SCOPE}),
        )
        todo = [a for a in apps if not self.apps[a].cc_secret]
        deadline = time.monotonic() + PREP_DEADLINE
        with ops.connect(dsn) as conn:
            for app in todo:
                if time.monotonic() > deadline:
                    raise BankError("creating confidential clients takes far too long")
                with conn.transaction(), ops.app_context(conn, lifecycle.names_of(conn, app)):
                    made, secret = clients.create(conn, spec)
                assert secret is not None
                self.apps[app].cc_client_id, self.apps[app].cc_secret = made.client_id, secret

    # ------------------------------------------------------------------ accounts

    async def ensure_accounts(self, client: SetupClient, wanted: Sequence[tuple[str, int]]) -> int:
        """Every wanted account exists and holds an unused refresh token.

        Signup for new ones (409 email_taken on a reused cluster: log in
        instead), login for those whose token was lost. Returns how many
        argon2-costing calls were made.
        """
        for key in wanted:
            self.accounts.setdefault(key, Account(app=key[0], index=key[1]))
        todo = [self.accounts[k] for k in wanted if not self.accounts[k].refresh]

        async def one(acc: Account) -> Reply:
            reply = await client.login(acc.app, acc.email, PASSWORD) if acc.created else None
            if reply is None or reply.status == 401:
                reply = await client.signup(acc.app, acc.email, PASSWORD)
                if reply.status == 409:
                    reply = await client.login(acc.app, acc.email, PASSWORD)
            if reply.ok and reply.get("refresh_token"):
                acc.created = True
                acc.refresh = str(reply.get("refresh_token"))
            return reply

        replies = await sc.gather_bounded(todo, one, deadline_s=PREP_DEADLINE)
        failed = sc.first_error(replies)
        if failed:
            missing = any(sc.missing_endpoint(r) for r in replies)
            raise BankError(f"preparing accounts (signup/login): {failed}", missing=missing)
        return len(todo)

    async def access_tokens(
        self, client: SetupClient, wanted: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], str]:
        """A fresh access token per account, by one refresh each (cheap: no argon2)."""

        async def one(key: tuple[str, int]) -> tuple[tuple[str, int], Reply]:
            acc = self.accounts[key]
            assert acc.refresh is not None
            reply = await client.refresh(acc.app, self.apps[acc.app].client_id, acc.refresh)
            acc.refresh = str(reply.get("refresh_token")) if reply.ok else None
            return key, reply

        results = await sc.gather_bounded(wanted, one, deadline_s=PREP_DEADLINE)
        replies = [r for _, r in results]
        failed = sc.first_error(replies)
        if failed:
            missing = any(sc.missing_endpoint(r) for r in replies)
            raise BankError(f"refreshing for access tokens: {failed}", missing=missing)
        return {key: str(r.get("access_token")) for key, r in results}

    def refresh_lines(self, wanted: Sequence[tuple[str, int]]) -> list[str]:
        """The refresh chains for refresh.lua: app, public client, token."""
        out = []
        for key in wanted:
            acc = self.accounts[key]
            if acc.refresh:
                out.append(f"{acc.app}\t{self.apps[acc.app].client_id}\t{acc.refresh}")
                acc.refresh = None  # spent as soon as wrk sends it
        return out

    def take_back(self, lines: Iterable[str]) -> int:
        """Tokens that survived a refresh run belong to accounts again (by app, in order)."""
        free: dict[str, list[Account]] = {}
        for acc in self.accounts.values():
            if not acc.refresh:
                free.setdefault(acc.app, []).append(acc)
        taken = 0
        for line in lines:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or not free.get(parts[0]):
                continue
            free[parts[0]].pop().refresh = parts[2]
            taken += 1
        return taken
