"""CLI ergonomics: --json everywhere a command prints a result, shell completion,
--version, and `make help` without colour codes when its output is not a terminal."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pty
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conftest import new_app_id
from oneauth.cli.main import build_parser, main
from oneauth.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Commands that print no result to parse: long-running processes (their output is the log)
# and the ones whose output is already a machine format of its own.
NO_JSON = {
    "serve": "runs the service",
    "dev run": "runs the service",
    "worker": "runs the delivery worker",
    "platform worker": "runs the job runner",
    "audit export": "prints NDJSON already",
    "completion": "prints a shell script",
}


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
    for action in subs:
        for name, child in action.choices.items():
            yield from leaves(child, (*path, name))


def test_every_command_that_prints_a_result_takes_json() -> None:
    commands = dict(leaves(build_parser()))
    assert len(commands) > 60  # the walk reached the nested groups
    missing = [
        name
        for name, parser in commands.items()
        if name not in NO_JSON
        and "--json" not in {o for a in parser._actions for o in a.option_strings}
    ]
    assert missing == [], f"commands without --json: {missing}"
    assert set(NO_JSON) <= set(commands), "NO_JSON names a command that is gone"


Run = tuple[int, str, str]


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., Run]:
    """`oneauth ARGS` in this process (a subprocess costs seconds of imports per call):
    (exit status, stdout, stderr), with only the ONEAUTH_* variables given."""
    for name in [n for n in os.environ if n.startswith("ONEAUTH_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # never the checkout's embedded cluster under .data/

    def run(*args: str, **env: str) -> Run:
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            capsys.readouterr()
            try:
                main(list(args))
                status = 0
            except SystemExit as exc:
                status = int(exc.code or 0)
            out, err = capsys.readouterr()
        return status, out, err

    return run


def as_json(result: Run) -> Any:
    status, out, err = result
    assert status == 0, err
    return json.loads(out)  # the whole of stdout, nothing else printed


def test_bootstrap_migrate_suspend_resume_delete_print_json(
    cli: Callable[..., Run], pg_admin_dsn: str
) -> None:
    """A new installation through the CLI's JSON alone: each step reads the one before."""
    suffix = secrets.token_hex(4)
    database = f"oneauth_t_json_{suffix}"
    made = as_json(
        cli(
            "db",
            "bootstrap",
            "--json",
            "--admin-url",
            pg_admin_dsn,
            "--database",
            database,
            "--operator-role",
            f"oa_json_op_{suffix}",
            "--service-role",
            f"oa_json_svc_{suffix}",
        )
    )
    try:
        assert made["namespace"]
        env = {
            "ONEAUTH_DATABASE_URL": made["ONEAUTH_DATABASE_URL"],
            "ONEAUTH_OPERATOR_DATABASE_URL": made["ONEAUTH_OPERATOR_DATABASE_URL"],
            "ONEAUTH_PUBLIC_URL": "https://auth.example.com",
        }
        summary = as_json(cli("migrate", "--json", **env))
        assert summary["failed"] == []
        assert summary["platform_app"] == "created"
        app_id = new_app_id("json")
        as_json(cli("apps", "provision", app_id, "--name", "JSON", "--json", **env))
        again = as_json(cli("migrate", "--json", **env))
        assert again["control_applied"] == []
        assert again["platform_app"] == "up to date"
        assert {a["app_id"] for a in again["apps"]} >= {app_id, "platform"}
        assert again["total"] == len(again["apps"])
        suspended = as_json(cli("apps", "suspend", app_id, "--json", **env))
        assert suspended["status"] == "suspended"
        assert suspended["issuer"] == f"https://auth.example.com/apps/{app_id}"
        assert as_json(cli("apps", "resume", app_id, "--json", **env))["status"] == "active"
        deleted = as_json(cli("apps", "delete", app_id, "--yes", "--json", **env))
        receipt = deleted.pop("receipt")
        claims = deleted.pop("claims")
        assert deleted == {
            "app_id": app_id,
            "status": "deleted",
            "tombstone": True,
            "dek_id": claims["dek_id"],
        }
        assert claims["app_id"] == app_id
        assert receipt.count(".") == 2  # the signed JWS (K3)
    finally:
        _drop(pg_admin_dsn, database, made)


def _drop(admin_dsn: str, database: str, made: dict[str, str]) -> None:
    """The database and every role it made (app roles are cluster-wide)."""
    roles: list[str] = []
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(made["ONEAUTH_OPERATOR_DATABASE_URL"]) as own,
    ):
        roles = [str(r[0]) for r in own.execute("SELECT role_name FROM oneauth.apps")]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        for role in [*roles, made["service_role"], made["operator_role"]]:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_new_master_key_json_is_a_usable_key(cli: Callable[..., Run]) -> None:
    body = as_json(cli("keys", "new-master-key", "--json"))
    assert set(body) == {"ONEAUTH_MASTER_KEY"}
    Settings.from_env(body)  # validates the key


def test_version_is_the_installed_distributions(cli: Callable[..., Run]) -> None:
    status, out, _ = cli("--version")
    assert status == 0
    assert out.strip() == f"oneauth {version('oneauth')}"
    assert version("oneauth") == version("oneauth-verifier")


def test_bash_completion_is_valid_bash_and_completes_nested_commands(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    script = tmp_path / "oneauth.bash"
    status, out, err = cli("completion", "bash")
    assert status == 0, err
    script.write_text(out)
    subprocess.run(["bash", "-n", str(script)], check=True)

    def complete(line: str) -> set[str]:
        words = line.split(" ")
        probe = (
            f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
            f'COMP_LINE="{line}"; COMP_POINT={len(line)}; _shtab_oneauth; '
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        return set(out.stdout.split())

    assert complete("oneauth mi") == {"migrate"}
    assert "rotate" in complete("oneauth keys r")
    assert "--json" in complete("oneauth migrate --j")


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef oneauth"), ("tcsh", "complete")])
def test_zsh_and_tcsh_completion(cli: Callable[..., Run], shell: str, marker: str) -> None:
    status, out, err = cli("completion", shell)
    assert status == 0, err
    assert marker in out
    assert "migrate" in out


def make_help(*, tty: bool, **env: str) -> bytes:
    make = shutil.which("make")
    assert make is not None
    environ = {**os.environ, **env}
    environ.pop("NO_COLOR", None) if "NO_COLOR" not in env else None
    if not tty:
        return subprocess.run(
            [make, "--no-print-directory", "help"],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            check=True,
        ).stdout
    pid, fd = pty.fork()
    if pid == 0:  # the child: make on a terminal
        os.chdir(ROOT)
        os.execve(make, [make, "--no-print-directory", "help"], environ)  # noqa: S606
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    os.close(fd)
    return out


def test_make_help_has_colour_codes_only_on_a_terminal() -> None:
    piped = make_help(tty=False)
    assert b"\x1b" not in piped
    assert re.search(rb"^  run +start the service", piped, re.M)
    assert b"\x1b[36m" in make_help(tty=True)
    assert b"\x1b" not in make_help(tty=True, NO_COLOR="1")
