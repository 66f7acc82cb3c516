"""The fault suite's rig: a Postgres cluster of its own and real ``oneauth serve`` processes.

The suite restarts and starves Postgres, so it never uses the session's shared
server: each module gets a throwaway cluster started from the machine's
binaries (CI installs them; without them the tests skip, or fail when
``TEST_REQUIRE_FEDERATION_RIG=1`` says the rig must be complete).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.db import ops
from oneauth.db.bootstrap import bootstrap
from oneauth.db.naming import AppNames
from oneauth.localpg import LocalPostgres, LocalPostgresError, find_bindir, free_port, scratch_dir
from oneauth.oauth import clients
from oneauth.settings import Settings
from rigcheck import unavailable

PASSWORD = "violet-Harbor-lantern-42"


def require_pg_binaries() -> None:
    try:
        find_bindir()
    except LocalPostgresError as exc:
        unavailable(f"the fault suite needs the Postgres server binaries: {exc}")


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any ONEAUTH_* name (E2), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, **extra}


@dataclass
class Server:
    """One ``oneauth serve`` process (uvicorn, ``workers`` worker processes)."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"oneauth serve exited {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        pytest.fail(f"oneauth serve never became ready:\n{self.tail()}")

    def tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def workers(self) -> list[int]:
        """The uvicorn worker processes' pids (children of the supervisor)."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        pids = [int(p) for p in out.split()]
        # Not multiprocessing's resource tracker, only the spawned workers.
        return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit (uvicorn drains in-flight requests first)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"oneauth serve did not stop within {timeout} s of SIGTERM")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Rig:
    cluster: LocalPostgres
    root: Path
    operator_dsn: str
    service_dsn: str
    app_id: str
    client_id: str  # the app's default (public, first-party) client
    cc_id: str  # a confidential client with client_credentials
    cc_secret: str
    names: AppNames
    servers: list[Server] = field(default_factory=list)

    def settings(self, **kwargs: Any) -> Settings:
        return Settings(
            **{"env": "test", "public_url": "http://oneauth.test", **kwargs},
            database_url=self.service_dsn,
            operator_database_url=self.operator_dsn,
        )

    def serve(self, *, workers: int = 1, env: dict[str, str] | None = None, **kw: Any) -> Server:
        port = int(kw.pop("port", 0)) or free_port()
        settings = self.settings(port=port, **kw)
        log = self.root / f"serve-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "oneauth.cli.main", "serve", "--workers", str(workers)],
            env=clean_environ(**settings.to_environ(), **(env or {})),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = Server(proc, port, log)
        self.servers.append(server)
        server.wait_ready()
        return server

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``oneauth ARGS`` as the operator, as a platform team would run it."""
        proc = subprocess.run(
            [sys.executable, "-m", "oneauth.cli.main", *args],
            env=clean_environ(**self.settings().to_environ()),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def pg_stop(self, mode: str) -> None:
        datadir = str(self.cluster.datadir)
        proc = self.cluster._run("pg_ctl", "-D", datadir, "-m", mode, "-w", "stop")
        assert proc.returncode == 0, proc.stderr

    def pg_start(self) -> None:
        self.cluster.start()

    def operator(self) -> psycopg.Connection[Any]:
        return ops.connect(self.operator_dsn)

    @contextlib.contextmanager
    def in_app(self) -> Iterator[psycopg.Connection[Any]]:
        """An operator connection inside the app's schema (as its role), one transaction."""
        with self.operator() as conn, conn.transaction(), ops.app_context(conn, self.names):
            yield conn

    def stop_servers(self) -> None:
        for server in self.servers:
            server.kill()
        self.servers.clear()

    def close(self) -> None:
        self.stop_servers()
        if os.environ.get("TEST_FAULTS_KEEP"):
            return
        self.cluster.destroy()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def make_rig(label: str) -> Iterator[Rig]:
    require_pg_binaries()
    root = scratch_dir(f"oneauth-faults-{label}-")
    cluster = LocalPostgres(root / "data", fast=True)
    try:
        cluster.init()
        # The fast cluster's synchronous_commit = off loses the last commits when
        # Postgres crashes (pg_ctl -m immediate): a refresh answered 200 would then
        # never have happened. Production commits are durable; so are the rig's.
        # fsync stays off: only Postgres is killed here, never the machine, so
        # what reached the kernel survives.
        with (cluster.datadir / "postgresql.auto.conf").open("a") as conf:
            conf.write("synchronous_commit = on\n")
        cluster.start()
        made = bootstrap(
            cluster.admin_dsn(),
            database=f"oneauth_f_{label}",
            operator_role=f"oneauth_f_{label}",
            operator_password=secrets.token_urlsafe(16),
            service_role=f"oneauth_f_{label}_svc",
            service_password=secrets.token_urlsafe(16),
        )
        migrate_all(made.operator_dsn)
        probe = Settings(
            env="test",
            public_url="http://oneauth.test",
            database_url=made.service_dsn,
            operator_database_url=made.operator_dsn,
        )
        app_id = f"f-{secrets.token_hex(4)}"
        with ops.connect(made.operator_dsn) as conn:
            made_app = lifecycle.provision(conn, probe, app_id, "Faults")
            app = made_app.app
            with conn.transaction(), ops.app_context(conn, app.names):
                cc, secret = clients.create(
                    conn,
                    clients.ClientSpec(
                        name="Service",
                        kind="confidential",
                        grant_types=frozenset({"client_credentials"}),
                        scopes=frozenset({"orders:read"}),
                    ),
                )
        default = made_app.extra.get("default_client_id")
        assert secret is not None
        assert isinstance(default, str)
        rig = Rig(
            cluster=cluster,
            root=root,
            operator_dsn=made.operator_dsn,
            service_dsn=made.service_dsn,
            app_id=app_id,
            client_id=default,
            cc_id=cc.client_id,
            cc_secret=secret,
            names=app.names,
        )
    except BaseException:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield rig
    finally:
        rig.close()
