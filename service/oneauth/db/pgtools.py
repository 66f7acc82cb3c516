"""The client tools (``pg_dump``, ``pg_restore``) that match the server, and how to run them.

``pg_dump`` refuses a server newer than itself, and ``pg_restore`` reads only archives
of its own or an older format, so the tools are chosen by the server's major version:
``--pg-bin DIR`` when given, else Debian's ``/usr/lib/postgresql/<major>/bin``, else the
oldest installed major that is not older than the server, else ``PATH`` when that tool
is new enough.

The connection's password never goes on a command line (``ps`` shows it to every
user of the machine): it travels in ``PGPASSWORD`` in the child's environment (X5).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from psycopg import conninfo

DEBIAN_ROOT = Path("/usr/lib/postgresql")


class PgToolError(RuntimeError):
    """A client tool is missing, too old, or failed; the message says which and why."""


def tool_major(path: Path) -> int:
    """The major version a tool reports (``pg_dump (PostgreSQL) 15.8`` -> 15)."""
    try:
        out = subprocess.run(  # noqa: S603 (a tool path we chose, no shell)
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise PgToolError(f"{path} --version failed: {exc}") from None
    found = re.search(r"\)\s*(\d+)", out)
    if found is None:
        raise PgToolError(f"cannot read the version of {path}: {out.strip()!r}")
    return int(found.group(1))


def find_tool(name: str, server_major: int, bin_dir: Path | None = None) -> Path:
    """The ``name`` binary (pg_dump or pg_restore) to use against a server of ``server_major``."""
    if bin_dir is not None:
        path = bin_dir / name
        if not path.is_file():
            raise PgToolError(f"{path} does not exist (--pg-bin)")
        if tool_major(path) < server_major:
            raise PgToolError(
                f"{path} is version {tool_major(path)}, older than the server ({server_major})"
            )
        return path
    exact = DEBIAN_ROOT / str(server_major) / "bin" / name
    if exact.is_file():
        return exact
    newer = sorted(
        (int(p.parent.parent.name), p)
        for p in DEBIAN_ROOT.glob(f"*/bin/{name}")
        if p.parent.parent.name.isdigit() and int(p.parent.parent.name) >= server_major
    )
    if newer:
        return newer[0][1]
    on_path = shutil.which(name)
    if on_path is not None and tool_major(Path(on_path)) >= server_major:
        return Path(on_path)
    raise PgToolError(
        f"no {name} for PostgreSQL {server_major} or newer: install the client tools "
        f"(`apt-get install postgresql-client-{server_major}`) or pass --pg-bin DIR"
    )


def split_dsn(dsn: str) -> tuple[str, dict[str, str]]:
    """A connection string without its password, and the environment that carries it."""
    params = conninfo.conninfo_to_dict(dsn)
    # The same libpq environment as the CLI's own connection (PGSSLROOTCERT, PGPASSFILE...).
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), env
