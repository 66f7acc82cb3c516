"""oneauth and oneauth-verifier share one version (packages/verifier/.../_version.py)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import oneauth
import oneauth_verifier

ROOT = Path(__file__).resolve().parents[2]


def test_one_version_for_server_verifier_and_changelog() -> None:
    version = oneauth_verifier.__version__
    assert oneauth.__version__ == version
    assert metadata.version("oneauth-verifier") == version
    assert metadata.version("oneauth") == version
    # The server pins its own verifier: the pin is the one literal beside _version.py.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.startswith("oneauth-verifier")]
    assert pins == [f"oneauth-verifier=={version}"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    first = re.search(r"^## (\S+)", changelog, re.MULTILINE)
    assert first is not None
    assert first.group(1) == version
