"""The peer measured beside oneauth: panva's oidc-provider, client_credentials only.

``peer.mjs`` configures it as fairly as oneauth is to itself (one ES256 key, JWT
access tokens, one confidential client with HTTP Basic, in memory, one Node
process); it is installed by :mod:`oneauth.testing.node` (the federation tests'
pinned version and cache). :func:`start` answers a reason instead of a server when
node/npm are missing, so the bench reports the peer as skipped and goes on.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
from ops.bench.loadrun import LoadSpec, Measured
from ops.bench.servers import Server
from ops.bench.setup_client import FORM, basic_auth
from ops.bench.stats import summarize
from ops.bench.wrk import Request, write_requests

from oneauth.localpg import free_port
from oneauth.testing import node

SCRIPT = Path(__file__).resolve().parent / "peer.mjs"
CLIENT_ID = "bench"
SCOPE = "bench:read"
CONDITIONS = (
    "one Node process, in-memory adapter, one ES256 key, JWT access tokens "
    "(resource indicators, accessTokenFormat jwt), client_secret_basic, nothing persisted"
)


class Peer:
    def __init__(self, server: Server, secret: str, versions: dict[str, str]) -> None:
        self.server = server
        self.secret = secret
        self.info: dict[str, Any] = {**versions, "conditions": CONDITIONS}

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def pid(self) -> int:
        return self.server.pid

    def request(self) -> Request:
        return Request(
            "POST",
            "/token",
            f"grant_type=client_credentials&scope={SCOPE}",
            (
                ("Content-Type", FORM["content-type"]),
                ("Authorization", basic_auth(CLIENT_ID, self.secret)),
            ),
        )

    def probe(self) -> None:
        """One grant: it must be an ES256 JWT with the scope, as ours is."""
        req = self.request()
        reply = httpx.post(
            self.server.base + req.path, content=req.body, headers=dict(req.headers), timeout=10
        )
        body = reply.json()
        head = str(body.get("access_token", "")).split(".", 1)[0]
        alg = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)) or b"{}")
        if reply.status_code != 200 or alg.get("alg") != "ES256" or body.get("scope") != SCOPE:
            raise RuntimeError(f"peer answered HTTP {reply.status_code}: {reply.text[:300]}")

    def spec(self, tmp: Path) -> LoadSpec:
        path = tmp / "peer-cc.tsv"
        write_requests(path, [self.request()])
        return LoadSpec(script="list.lua", make_input=lambda: path, expect='"access_token"')

    def stop(self) -> None:
        self.server.stop()


def start() -> Peer | str:
    """The running peer, or why there is none (node/npm missing, npm ci failed)."""
    try:
        node_bin, npm = node.node_tools()
        target = node.install(npm)
    except (node.NodeUnavailable, RuntimeError, OSError) as exc:
        return f"peer skipped: {exc}"
    secret = secrets.token_urlsafe(24)
    port = free_port()
    env = {"NODE_ENV": "production", "PEER_PORT": str(port), "PEER_CLIENT_SECRET": secret}
    server = Server("peer", [node_bin, str(node.script_in(target, SCRIPT))], env, port)
    versions = {
        "name": "panva's oidc-provider",
        "version": node.provider_version(),
        "node": node.node_version(node_bin),
    }
    try:
        server.wait_ready("/.well-known/openid-configuration")
        peer = Peer(server, secret, versions)
        peer.probe()
    except Exception:
        server.stop()
        raise
    return peer


def figures(peer: Peer, measured: Measured, ours_rps: float) -> dict[str, Any]:
    """The peer's side of the side-by-side, for the client_credentials result."""
    s = summarize(measured.samples)
    cpu = measured.cpu
    return {
        **peer.info,
        "status": "ok",
        "rps": s.rps,
        "p50_ms": s.p50_ms,
        "p95_ms": s.p95_ms,
        "p99_ms": s.p99_ms,
        "errors": s.errors,
        "rps_spread": s.rps_spread,
        "samples_rps": [x.rps for x in measured.samples],
        "node_cores": cpu.service if cpu else None,
        "discarded": measured.discarded,
        "ratio": ours_rps / s.rps if s.rps else None,
    }
