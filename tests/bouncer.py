"""A real PgBouncer (Debian's binary) in transaction mode in front of the test server.

Started by the tests, never mocked: ``TEST_THROUGH_PGBOUNCER=1`` routes every
service connection of the session through it (conftest.py), and
tests/test_pgbouncer.py starts one for its own checks. Every database on the
server is reachable through it (``* = host=... port=...``); each login role the
tests make is added to its auth file and the file reloaded (admin console
``RELOAD``, synchronous) before the first connection.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg

from oneauth.localpg import free_port, scratch_dir
from rigcheck import unavailable

ADMIN = "pgbouncer_admin"


def find_pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )


def require_pgbouncer() -> str:
    """The binary; a skip on a developer's machine without it, a failure on CI."""
    found = find_pgbouncer()
    if found is None:
        unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    return found


class PgBouncer:
    """One pgbouncer process (as the postgres user when root: it refuses root)."""

    def __init__(self, server_host: str, server_port: int, *, pool_size: int = 40) -> None:
        self.binary = require_pgbouncer()
        self.dir = scratch_dir("oneauth-pgbouncer-")
        self.port = free_port()
        self.server = (server_host, server_port)
        self._admin_password = secrets.token_urlsafe(16)
        self._users: dict[str, str] = {ADMIN: self._admin_password}
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_users()
        (self.dir / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={server_host} port={server_port}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = scram-sha-256",
                    f"auth_file = {self.dir / 'users.txt'}",
                    f"admin_users = {ADMIN}",
                    # 1.21+ would add max_prepared_statements (the statement cache's
                    # way back); Debian 12's 1.18 has no such setting: the cache is off.
                    "pool_mode = transaction",
                    "max_client_conn = 1000",
                    f"default_pool_size = {pool_size}",
                    "server_reset_query =",
                    "ignore_startup_parameters = extra_float_digits",
                    f"logfile = {self.dir / 'pgbouncer.log'}",
                    "log_connections = 0",
                    "log_disconnections = 0",
                ]
            )
            + "\n"
        )

    def _write_users(self) -> None:
        lines = [f'"{user}" "{password}"' for user, password in self._users.items()]
        path = self.dir / "users.txt"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o644)

    def start(self) -> PgBouncer:
        cmd = [self.binary, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self._log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port}: {self._log_tail()}")

    def _log_tail(self) -> str:
        log = self.dir / "pgbouncer.log"
        stderr = b""
        if self._proc is not None and self._proc.poll() is not None and self._proc.stderr:
            stderr = self._proc.stderr.read()
        text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return text + stderr.decode(errors="replace")

    def admin(self, command: str) -> list[tuple[str | None, ...]]:
        """One admin-console command (simple query protocol, as the console wants)."""
        dsn = (
            f"host=127.0.0.1 port={self.port} dbname=pgbouncer user={ADMIN} "
            f"password={self._admin_password}"
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            result = conn.pgconn.exec_(command.encode())
            if result.status not in (1, 2):  # COMMAND_OK, TUPLES_OK
                raise RuntimeError(f"pgbouncer {command}: {result.error_message.decode()}")
            return [
                tuple(
                    None if v is None else v.decode()
                    for v in (result.get_value(r, c) for c in range(result.nfields))
                )
                for r in range(result.ntuples)
            ]

    def route(self, dsn: str) -> str:
        """``dsn`` (a TCP URL with password) through this pgbouncer; its role added."""
        parts = urlsplit(dsn)
        if not (parts.username and parts.password):
            raise ValueError("route() needs a URL with role and password")
        user, password = unquote(parts.username), unquote(parts.password)
        if self._users.get(user) != password:
            self._users[user] = password
            self._write_users()
            if self._proc is not None:
                self.admin("RELOAD")
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def server_of(dsn: str) -> tuple[str, int]:
    parts = urlsplit(dsn)
    return parts.hostname or "127.0.0.1", parts.port or 5432
