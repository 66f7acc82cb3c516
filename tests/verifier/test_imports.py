"""Resource servers import the verifier without the auth service's dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import json, sys
import {module}
print(json.dumps(sorted(sys.modules)))
"""

_FORBIDDEN_ROOTS = ("starlette", "asyncpg", "psycopg", "psycopg_pool", "uvicorn", "authlib")


def _modules_after_import(module: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    modules: list[str] = json.loads(result.stdout)
    return modules


@pytest.mark.parametrize("module", ["oneauth_verifier", "oneauth_verifier.testing"])
def test_the_distribution_imports_nothing_of_the_server(module: str) -> None:
    """oneauth_verifier (the oneauth-verifier wheel) never reaches back into ``oneauth``."""
    modules = _modules_after_import(module)
    assert module in modules
    assert [m for m in modules if m.split(".")[0] in (*_FORBIDDEN_ROOTS, "fastapi")] == []
    assert [m for m in modules if m == "oneauth" or m.startswith("oneauth.")] == []


@pytest.mark.parametrize("module", ["oneauth.verifier", "oneauth.verifier.testing"])
def test_import_pulls_in_no_service_dependencies(module: str) -> None:
    modules = _modules_after_import(module)
    assert "oneauth.verifier" in modules  # the probe did import it
    leaked = [m for m in modules if m.split(".")[0] in _FORBIDDEN_ROOTS]
    assert leaked == []
    other_oneauth = [
        m for m in modules if m.startswith("oneauth.") and not m.startswith("oneauth.verifier")
    ]
    assert other_oneauth == []


def test_starlette_integration_is_opt_in() -> None:
    modules = _modules_after_import("oneauth.verifier.starlette")
    assert "starlette.authentication" in modules
    assert not [m for m in modules if m.split(".")[0] in ("asyncpg", "psycopg")]
