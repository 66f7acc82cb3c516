"""The HTTP scenarios of issue 6: what each sends, and what it is held against.

Each builder probes its endpoint once with the setup client first: a routing
404/405 means the endpoint does not exist (yet) and the scenario is reported
"unavailable"; any other failure is reported "failed" with the answer. Then it
writes the request file wrk cycles through. Traffic is spread over the
stage's active apps, round-robin.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from ops.bench.bank import CC_SCOPE, PASSWORD, Bank
from ops.bench.loadrun import LoadSpec
from ops.bench.setup_client import FORM, Reply, SetupClient, basic_auth, missing_endpoint
from ops.bench.stats import Target
from ops.bench.wrk import Request, write_requests

T = TypeVar("T")
Key = tuple[str, int]


class Unavailable(Exception):
    """The endpoint is not there: the scenario is reported, not run."""


class ScenarioFailed(Exception):
    """The endpoint answered, but not as the contract says; the message shows how."""


@dataclass
class Stage:
    """Everything a scenario builder needs for one fleet size."""

    apps: int
    active: list[str]
    wanted: list[Key]
    base: str
    dsn: str
    bank: Bank
    tmp: Path
    log: Callable[[str], None]

    def run(self, fn: Callable[[SetupClient], Awaitable[T]]) -> T:
        """Run one preparation step on a fresh event loop and client."""

        async def go() -> T:
            client = SetupClient(self.base)
            try:
                return await fn(client)
            finally:
                await client.close()

        return asyncio.run(go())

    def file(self, name: str, requests: list[Request]) -> Callable[[], Path]:
        path = self.tmp / f"{name}-{self.apps}.tsv"
        write_requests(path, requests)
        return lambda: path

    def keys_one_per_app(self) -> list[Key]:
        """One account per active app (the first), for scenarios that need no chains."""
        seen: dict[str, Key] = {}
        for key in self.wanted:
            seen.setdefault(key[0], key)
        return list(seen.values())


@dataclass(frozen=True)
class Definition:
    name: str
    title: str
    limit: str  # name of the Limit the ratio is computed against
    target: Target | None
    keycloak_2vcpu: float | None  # Keycloak's sizing guide figure per vCPU x 2
    build: Callable[[Stage], LoadSpec]
    # Preparation it depends on: "apps" (GET /v1/app), "accounts", "cc" (clients).
    needs: tuple[str, ...] = ("apps", "accounts")


def _check(reply: Reply, what: str, expect: str) -> None:
    if missing_endpoint(reply):
        raise Unavailable(f"{what}: HTTP {reply.status} (endpoint not implemented)")
    text = json.dumps(reply.body, separators=(",", ":")) if isinstance(reply.body, dict) else ""
    if not reply.ok or expect not in text:
        raise ScenarioFailed(f"{what}: HTTP {reply.status} {str(reply.body)[:300]}")


def _json_post(path: str, body: dict[str, str]) -> Request:
    return Request(
        "POST",
        path,
        json.dumps(body, separators=(",", ":")),
        (("Content-Type", "application/json"),),
    )


# ---------------------------------------------------------------------- builders


def build_login(stage: Stage) -> LoadSpec:
    key = stage.wanted[0]
    acc = stage.bank.accounts[key]
    reply = stage.run(lambda c: c.login(acc.app, acc.email, PASSWORD))
    _check(reply, "POST /v1/login", '"access_token"')
    requests = [
        _json_post(
            f"/apps/{app}/v1/login",
            {"email": stage.bank.accounts[(app, i)].email, "password": PASSWORD},
        )
        for app, i in stage.wanted
    ]
    return LoadSpec(
        script="list.lua", make_input=stage.file("login", requests), expect='"access_token"'
    )


def build_refresh(stage: Stage) -> LoadSpec:
    # The bank's tokens came from signup/login and were probed by preparation.
    out = stage.tmp / f"refresh-left-{stage.apps}.tsv"
    path = stage.tmp / f"refresh-{stage.apps}.tsv"
    bank = stage.bank

    def make_input() -> Path:
        lines = bank.refresh_lines(stage.wanted)
        path.write_text("".join(line + "\n" for line in lines))
        out.unlink(missing_ok=True)
        return path

    def after_run() -> None:
        kept = bank.take_back(out.read_text().splitlines()) if out.exists() else 0
        lost = len(stage.wanted) - kept
        # Chains in flight when wrk stopped are gone; one login each restores them.
        stage.run(lambda c: bank.ensure_accounts(c, stage.wanted))
        if lost > 2 * len(stage.wanted) // 3:
            stage.log(f"    refresh: {lost} of {len(stage.wanted)} chains were lost in one run")

    # Probe: one rotation through the setup client, on a chain of our own.
    key = stage.wanted[0]
    acc = bank.accounts[key]
    assert acc.refresh is not None
    reply = stage.run(lambda c: c.refresh(acc.app, bank.apps[acc.app].client_id, acc.refresh or ""))
    _check(reply, "POST /oauth/token grant_type=refresh_token", '"refresh_token"')
    acc.refresh = str(reply.get("refresh_token"))
    return LoadSpec(script="refresh.lua", make_input=make_input, out_path=out, after_run=after_run)


def _cc_request(stage: Stage, app: str) -> Request:
    info = stage.bank.apps[app]
    return Request(
        "POST",
        f"/apps/{app}/oauth/token",
        "grant_type=client_credentials",
        (
            ("Content-Type", FORM["content-type"]),
            ("Authorization", basic_auth(info.cc_client_id, info.cc_secret)),
        ),
    )


def build_client_credentials(stage: Stage) -> LoadSpec:
    info = stage.bank.apps[stage.active[0]]
    reply = stage.run(lambda c: c.client_credentials(info.app, info.cc_client_id, info.cc_secret))
    _check(reply, "POST /oauth/token grant_type=client_credentials", '"access_token"')
    if CC_SCOPE not in str(reply.get("scope")):
        raise ScenarioFailed(f"client_credentials granted {reply.get('scope')!r}")
    requests = [_cc_request(stage, app) for app in stage.active]
    return LoadSpec(
        script="list.lua", make_input=stage.file("cc", requests), expect='"access_token"'
    )


def build_introspection(stage: Stage) -> LoadSpec:
    keys = stage.keys_one_per_app()
    tokens = stage.run(lambda c: stage.bank.access_tokens(c, keys))
    first = keys[0]
    info = stage.bank.apps[first[0]]
    reply = stage.run(
        lambda c: c.introspect(info.app, info.cc_client_id, info.cc_secret, tokens[first])
    )
    _check(reply, "POST /oauth/introspect", '"active":true')
    requests = []
    for key in keys:
        app_info = stage.bank.apps[key[0]]
        requests.append(
            Request(
                "POST",
                f"/apps/{key[0]}/oauth/introspect",
                f"token={tokens[key]}",
                (
                    ("Content-Type", FORM["content-type"]),
                    ("Authorization", basic_auth(app_info.cc_client_id, app_info.cc_secret)),
                ),
            )
        )
    return LoadSpec(
        script="list.lua", make_input=stage.file("introspect", requests), expect='"active":true'
    )


def build_jwks(stage: Stage) -> LoadSpec:
    app = stage.active[0]
    reply = stage.run(lambda c: c.call("GET", f"/apps/{app}/.well-known/openid-configuration"))
    _check(reply, "GET /.well-known/openid-configuration", '"jwks_uri"')
    jwks_path = urlsplit(str(reply.get("jwks_uri"))).path
    suffix = jwks_path.removeprefix(f"/apps/{app}")
    keys = stage.run(lambda c: c.call("GET", jwks_path))
    _check(keys, f"GET {jwks_path}", '"keys"')
    requests = []
    for a in stage.active:
        requests.append(Request("GET", f"/apps/{a}/.well-known/openid-configuration"))
        requests.append(Request("GET", f"/apps/{a}{suffix}"))
    # Both documents are JSON objects whose first member is quoted.
    return LoadSpec(script="list.lua", make_input=stage.file("jwks", requests), expect='{"')


def build_me(stage: Stage) -> LoadSpec:
    keys = stage.keys_one_per_app()
    tokens = stage.run(lambda c: stage.bank.access_tokens(c, keys))
    first = keys[0]
    reply = stage.run(
        lambda c: c.call(
            "GET", f"/apps/{first[0]}/v1/me", headers={"authorization": f"Bearer {tokens[first]}"}
        )
    )
    _check(reply, "GET /v1/me", '"sub"')
    requests = [
        Request("GET", f"/apps/{k[0]}/v1/me", "", (("Authorization", f"Bearer {tokens[k]}"),))
        for k in keys
    ]
    return LoadSpec(script="list.lua", make_input=stage.file("me", requests), expect='"sub"')


# Keycloak's sizing guide (keycloak.org, "Concepts for sizing CPU and memory
# resources"): per vCPU, 15 password logins/s, 120 client-credentials grants/s
# and 120 refresh grants/s; the figures here are for our 2 vCPUs.
KEYCLOAK_PER_VCPU = {"login": 15.0, "client_credentials": 120.0, "refresh": 120.0}

_THROUGHPUT = Target(
    ">= 1,000/s, p99 < 50 ms, 0 errors", min_rps=1000, max_p99_ms=50, zero_errors=True
)


def definitions(cores: int) -> dict[str, Definition]:
    def kc(name: str) -> float | None:
        per = KEYCLOAK_PER_VCPU.get(name)
        return None if per is None else per * cores

    return {
        "login": Definition(
            "login",
            "password login (POST /v1/login)",
            "argon2id_verify",
            Target(">= 80% of argon2 limit, 0 errors", min_ratio=0.80),
            kc("login"),
            build_login,
        ),
        "refresh": Definition(
            "refresh",
            "refresh grant, fresh token each",
            "bare_pk",
            _THROUGHPUT,
            kc("refresh"),
            build_refresh,
        ),
        "client_credentials": Definition(
            "client_credentials",
            "client_credentials grant",
            "bare_pk",
            _THROUGHPUT,
            kc("client_credentials"),
            build_client_credentials,
            needs=("apps", "cc"),
        ),
        "introspection": Definition(
            "introspection",
            "introspection of a user access token",
            "bare_pk",
            _THROUGHPUT,
            None,
            build_introspection,
            needs=("apps", "cc", "accounts"),
        ),
        "jwks": Definition(
            "jwks",
            "discovery + JWKS (alternating)",
            "bare_json",
            None,
            None,
            build_jwks,
            needs=(),
        ),
        "me": Definition("me", "GET /v1/me with Bearer token", "bare_pk", None, None, build_me),
    }
