"""One throwaway oneauth (``oneauth.testing``) for the fixture's and the examples' tests,
on the suite's Postgres server (its own database, dropped after); and the examples'
modules, loaded from examples/ by path (they are not a package: each is a directory
a user copies)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from oneauth.testing import Oneauth, OneauthApp, start_oneauth

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(relative: str) -> ModuleType:
    """examples/<relative> as a module named after its file (once per session)."""
    path = EXAMPLES / relative
    name = f"example_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def live_oneauth(pg_admin_dsn: str) -> Iterator[Oneauth]:
    with start_oneauth(admin_dsn=pg_admin_dsn) as server:
        yield server


# Two apps for every test here (provisioning is the slow part): one to work in, and
# another for the cross-app checks. Tests make their own users (random addresses).
@pytest.fixture(scope="session")
def shop(live_oneauth: Oneauth) -> OneauthApp:
    return live_oneauth.app("shop")


@pytest.fixture(scope="session")
def other_app(live_oneauth: Oneauth) -> OneauthApp:
    return live_oneauth.app("other")
