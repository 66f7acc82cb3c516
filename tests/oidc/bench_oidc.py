"""Throughput of the provider: client_credentials grants/s and authorization code flows/s.

Run: ``.venv/bin/python -m tests.oidc.bench_oidc [--seconds 15] [--connections 32]
[--workers 1]``. Not collected by pytest. Needs ``wrk``; uses ``TEST_DATABASE_URL``
(an administrator URL) or a throwaway cluster from the local Postgres binaries.

The service runs as production runs it (``oneauth serve``: uvicorn, its own
processes, info-level request logs), on 127.0.0.1; wrk drives it with Lua:

* client_credentials: ``POST /oauth/token`` with HTTP Basic, a signed access token
  per request and its audit row;
* authorization code flow, for a browser already signed in to the app and a
  first-party client (no pages): ``GET /oauth/authorize`` (302 with a code: one
  code row, audit row) then ``POST /oauth/token`` (code consumed, PKCE checked,
  session + refresh token created, access token + RS256 ID token signed). One
  flow = both requests. Signing in (argon2id, ~tens of ms of CPU by design) is
  not part of it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.db import ops
from oneauth.db.bootstrap import bootstrap
from oneauth.localpg import LocalPostgres, free_port, scratch_dir
from oneauth.oauth import clients
from oneauth.settings import Settings

PASSWORD = "violet-Harbor-lantern-42"
REDIRECT = "http://127.0.0.1/cb"

CC_LUA = """
-- Globals, not locals: done() reads them from each thread with t:get().
ok, bad = 0, 0
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic %(basic)s"
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("RESULT ok=%%d bad=%%d seconds=%%.3f p50=%%.2f p99=%%.2f\\n",
    o, b, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""

CODE_LUA = """
local codes = {}
flows, bad = 0, 0
local authorize = "%(authorize)s"
local token = "%(token)s"
local cookie = "%(cookie)s"
local tail = "%(tail)s"
function request()
  local code = table.remove(codes)
  if code then
    return wrk.format("POST", token,
      {["Content-Type"] = "application/x-www-form-urlencoded"}, "code=" .. code .. tail)
  end
  return wrk.format("GET", authorize, {["Cookie"] = cookie})
end
function response(status, headers, body)
  if status == 302 then
    local location = headers["location"] or headers["Location"] or ""
    local code = string.match(location, "[?&]code=([^&]+)")
    if code then table.insert(codes, code) else bad = bad + 1 end
  elseif status == 200 then flows = flows + 1
  else bad = bad + 1 end
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local f, b = 0, 0
  for _, t in ipairs(threads) do f = f + t:get("flows"); b = b + t:get("bad") end
  io.write(string.format("RESULT ok=%%d bad=%%d seconds=%%.3f p50=%%.2f p99=%%.2f\\n",
    f, b, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _wrk(script: str, url: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        run = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 60,
        )
        if run.returncode != 0:
            sys.exit(f"wrk failed: {run.stdout}{run.stderr}")
        out = run.stdout
    finally:
        os.unlink(f.name)
    match = re.search(r"RESULT ok=(\d+) bad=(\d+) seconds=([\d.]+) p50=([\d.]+) p99=([\d.]+)", out)
    assert match, out
    ok, bad, secs, p50, p99 = (float(g) for g in match.groups())
    return {"ok": ok, "bad": bad, "per_second": ok / secs, "p50_ms": p50, "p99_ms": p99}


def _sign_in(base: str, app_id: str, client_id: str) -> str:
    """Sign in through the hosted login page; returns the browser session cookie value."""
    with httpx.Client(base_url=base) as http:
        created = http.post(
            f"/apps/{app_id}/v1/signup", json={"email": "bench@example.com", "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
        http.cookies.clear()
        verifier = secrets.token_urlsafe(48)
        page = http.get(
            f"/apps/{app_id}/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "scope": "openid",
                "code_challenge": _challenge(verifier),
                "code_challenge_method": "S256",
            },
        )
        fields = dict(re.findall(r'name="(csrf|flow)" value="([^"]*)"', page.text))
        done = http.post(
            f"/apps/{app_id}/login",
            data={**fields, "email": "bench@example.com", "password": PASSWORD},
        )
        assert done.status_code == 303, done.text
        cookie = http.cookies.get(f"oneauth_session_{app_id}")
        assert cookie
        return cookie


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install wrk)")

    cluster, root = None, None
    admin = os.environ.get("TEST_DATABASE_URL")
    if not admin:
        root = scratch_dir("oneauth-bench-pg-")
        cluster = LocalPostgres(root / "data", fast=True)
        cluster.start()
        admin = cluster.admin_dsn()
    server = None
    try:
        suffix = secrets.token_hex(3)
        made = bootstrap(
            admin,
            database="oneauth_bench_" + suffix,
            operator_role="oneauth_bench_" + suffix,
            operator_password=secrets.token_urlsafe(16),
            service_role=f"oneauth_bench_{suffix}_service",
            service_password=secrets.token_urlsafe(16),
        )
        dsn = made.operator_dsn
        migrate_all(dsn)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(database_url=dsn, public_url=base)
        app_id = "bench-" + secrets.token_hex(3)
        with ops.connect(dsn) as conn:
            app = lifecycle.provision(conn, settings, app_id, "Bench").app
            with conn.transaction(), ops.app_context(conn, app.names):
                service, secret = clients.create(
                    conn,
                    clients.ClientSpec(
                        name="service",
                        kind="confidential",
                        grant_types=frozenset({"client_credentials"}),
                        scopes=frozenset({"orders:read"}),
                    ),
                )
                web, _ = clients.create(
                    conn,
                    clients.ClientSpec(
                        name="web",
                        kind="public",
                        grant_types=frozenset({"authorization_code", "refresh_token"}),
                        scopes=frozenset({"openid"}),
                        redirect_uris=(REDIRECT,),
                        first_party=True,
                    ),
                )
        env = {
            **os.environ,
            "ONEAUTH_DATABASE_URL": made.service_dsn,
            "ONEAUTH_PUBLIC_URL": base,
            "ONEAUTH_PORT": str(port),
            "ONEAUTH_LOG_FORMAT": "json",
        }
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "oneauth"), "serve", "--workers", str(args.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the service did not start")
            time.sleep(0.2)

        cookie = _sign_in(base, app_id, web.client_id)
        assert secret is not None
        basic = base64.b64encode(f"{service.client_id}:{secret}".encode()).decode()
        cc = _wrk(CC_LUA % {"basic": basic}, f"{base}/apps/{app_id}/oauth/token", args.seconds,
                  args.connections)  # fmt: skip
        verifier = secrets.token_urlsafe(48)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": web.client_id,
                "redirect_uri": REDIRECT,
                "scope": "openid",
                "state": "s",
                "code_challenge": _challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        tail = "&" + urlencode(
            {
                "grant_type": "authorization_code",
                "redirect_uri": REDIRECT,
                "client_id": web.client_id,
                "code_verifier": verifier,
            }
        )
        code = _wrk(
            CODE_LUA
            % {
                "authorize": f"/apps/{app_id}/oauth/authorize?{query}",
                "token": f"/apps/{app_id}/oauth/token",
                "cookie": f"oneauth_session_{app_id}={cookie}",
                "tail": tail,
            },
            base,
            args.seconds,
            args.connections,
        )
        print(f"machine: {os.cpu_count()} CPUs; service workers: {args.workers}; "
              f"wrk: 1 thread, {args.connections} connections, {args.seconds} s")  # fmt: skip
        for name, result in (("client_credentials grants", cc), ("authorization code flows", code)):
            print(
                f"{name:>28}: {result['per_second']:8.0f}/s  (ok {result['ok']:.0f},"
                f" errors {result['bad']:.0f}, p50 {result['p50_ms']:.1f} ms,"
                f" p99 {result['p99_ms']:.1f} ms per request)"
            )
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
        if cluster is not None:
            cluster.destroy()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
