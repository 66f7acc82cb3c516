"""The oneauth-verifier wheel works alone: built from packages/verifier, installed into a
clean virtualenv that holds only its declared dependencies, it verifies a token whose keys
it fetches over HTTP, and it carries nothing but ``oneauth_verifier``.

Offline and fast: the wheel is built with the hatchling of the test environment (no build
isolation), and the clean virtualenv receives, besides the wheel (pip --no-index --no-deps),
copies of exactly the distributions that jwcrypto and httpx need, taken from this
environment by their RECORD files; ``pip check`` then proves the wheel's requirements are
met by them and nothing else is there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import oneauth_verifier

from ._support import AUDIENCE, LiveIssuer

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "verifier"
_PIP = [sys.executable, "-m", "pip"]
SERVER_ONLY = ("oneauth", "starlette", "fastapi", "asyncpg", "psycopg", "uvicorn", "authlib")

_PROBE = """
import asyncio, importlib.util, json, sys
import oneauth_verifier
from oneauth_verifier import Verifier
from oneauth_verifier.bearer import Demand
issuer, audience, app_id, token = sys.argv[1:5]
verifier = Verifier(issuer, audience, app_id)
claims = verifier.verify(token)
async_claims = asyncio.run(Verifier(issuer, audience, app_id).averify(token))
granted = Demand("orders:read").authorize(verifier, "Bearer " + token)
absent = [m for m in {absent} if importlib.util.find_spec(m) is not None]
print(json.dumps({{
    "version": oneauth_verifier.__version__,
    "file": oneauth_verifier.__file__,
    "sub": claims.sub,
    "async_sub": async_claims.sub,
    "granted": granted.sub,
    "present": absent,
}}))
"""


def _closure(names: list[str]) -> set[str]:
    """The installed distributions ``names`` need, transitively (markers evaluated)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = metadata.distribution(todo.pop()).metadata["Name"]
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        for spec in metadata.requires(name) or ():
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _copy_distribution(name: str, site: Path) -> None:
    dist = metadata.distribution(name)
    for file in dist.files or ():
        if file.parts[0] == ".." or "__pycache__" in file.parts:
            continue  # console scripts, byte code: not needed to import
        source = Path(str(dist.locate_file(file)))
        target = site / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            *_PIP,
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(PACKAGE),
        ],
        check=True,
        timeout=120,
    )
    (built,) = out.glob("oneauth_verifier-*.whl")
    return built


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    deps = [
        Requirement(r).name for r in metadata.requires("oneauth-verifier") or () if ";" not in r
    ]
    for name in sorted(_closure(deps)):
        _copy_distribution(name, site)
    subprocess.run(
        [
            *_PIP,
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    return python


def test_wheel_contains_only_oneauth_verifier(wheel: Path) -> None:
    version = oneauth_verifier.__version__
    assert wheel.name == f"oneauth_verifier-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = Parser().parsestr(zf.read(f"oneauth_verifier-{version}.dist-info/METADATA").decode())
    roots = {name.split("/")[0] for name in names}
    assert roots == {"oneauth_verifier", f"oneauth_verifier-{version}.dist-info"}
    assert "oneauth_verifier/py.typed" in names
    assert "oneauth_verifier/fastapi.py" in names
    assert meta["Name"] == "oneauth-verifier"
    assert meta["Version"] == version
    requires = sorted(meta.get_all("Requires-Dist") or [])
    plain = [r for r in requires if "extra ==" not in r]
    assert [Requirement(r).name for r in plain] == ["httpx", "jwcrypto"]
    extras = {Requirement(r).name for r in requires if "extra ==" in r}
    assert extras == {"fastapi", "starlette"}


def test_wheel_alone_in_a_clean_venv_verifies_a_token(
    clean_venv: Path, shop: LiveIssuer, tmp_path: Path
) -> None:
    check = subprocess.run(
        [*_PIP, "--python", str(clean_venv), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    token = shop.minter.mint(sub="user-42", scope="orders:read")
    argv = [shop.issuer, AUDIENCE, shop.app_id, token]
    # Run from an empty directory with no PYTHONPATH: nothing of this checkout is importable.
    probe = subprocess.run(
        [str(clean_venv), "-I", "-c", _PROBE.format(absent=list(SERVER_ONLY)), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    assert result["present"] == []
    assert result["version"] == oneauth_verifier.__version__
    assert result["file"].startswith(str(clean_venv.parent.parent))
    assert (result["sub"], result["async_sub"], result["granted"]) == ("user-42",) * 3
    # The keys came over HTTP from the issuer (discovery, then the JWKS), not from the test.
    assert shop.count("jwks") >= 1
