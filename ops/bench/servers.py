"""Start and stop the HTTP servers under test, exactly as production runs them.

* the service: ``oneauth serve --workers N`` (uvicorn, one worker per core,
  uvloop + httptools, no access log), configured through ONEAUTH_* only;
* the bare limit servers: ``ops.bench.serve_bare`` with the same uvicorn
  options and worker count, so the gap between them and the service is the
  service's own work.

Each server runs in its own session (process group); stop() ends that group,
identified by the pid we started, and nothing else. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from ops.bench.procstat import all_stats, cmdline, tree

from oneauth.localpg import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0


class ServerError(RuntimeError):
    pass


class Server:
    def __init__(self, name: str, cmd: list[str], env: Mapping[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._log = Path(f"/tmp/oneauth-bench-{name}-{port}.log")  # noqa: S108
        with self._log.open("w") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended in stop()
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self._log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def workers_up(self) -> int:
        return len(worker_pids(self))

    def wait_ready(
        self, path: str = "/healthz", *, workers: int = 1, timeout: float = START_TIMEOUT
    ) -> None:
        """Poll until ``path`` answers 200 and all ``workers`` exist (bounded).

        Any one worker can answer the probe; a run that started while another
        was still importing would measure fewer workers than configured.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                resp = httpx.get(self.base + path, timeout=2)
                if resp.status_code == 200 and (workers <= 1 or self.workers_up() >= workers):
                    # Let every worker finish its lifespan (pool, listeners) too.
                    time.sleep(1.0 if workers > 1 else 0)
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        self.stop()
        raise ServerError(
            f"{self.name} not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            # uvicorn's supervisor forwards SIGTERM to its workers and waits for them.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # A worker orphaned by a crashed supervisor would still hold the port.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def worker_pids(server: Server) -> set[int]:
    """uvicorn's worker processes (multiprocessing spawn children) now alive."""
    pids = tree(server.pid, all_stats()) - {server.pid}
    return {p for p in pids if "spawn_main" in cmdline(p)}


def start_service(
    *,
    dsn: str,
    master_key: str,
    workers: int,
    port: int | None = None,
    **extra: str,
) -> Server:
    port = port or free_port()
    env = {
        "ONEAUTH_ENV": "development",  # production insists on https for the issuer
        "ONEAUTH_DATABASE_URL": dsn,
        "ONEAUTH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ONEAUTH_MASTER_KEY": master_key,
        "ONEAUTH_HOST": "127.0.0.1",
        "ONEAUTH_PORT": str(port),
        "ONEAUTH_LOG_LEVEL": "warning",
        "ONEAUTH_LOG_FORMAT": "json",
        **extra,
    }
    cmd = [str(VENV_BIN / "oneauth"), "serve", "--workers", str(workers)]
    server = Server("service", cmd, env, port)
    server.wait_ready("/readyz", workers=workers)
    return server


def start_bare(kind: str, *, workers: int, dsn: str | None = None) -> Server:
    """The bare Starlette JSON server ("json") or the asyncpg PK lookup one ("pk")."""
    port = free_port()
    env = {"PYTHONPATH": str(REPO), "BENCH_PK_DSN": dsn or ""}
    cmd = [sys.executable, "-m", "ops.bench.serve_bare", kind, str(port), str(workers)]
    server = Server(f"bare-{kind}", cmd, env, port)
    server.wait_ready("/ready", workers=workers)
    return server
