"""One throwaway cluster for the whole fault suite; each test starts its own servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .rig import Rig, make_rig


@pytest.fixture(scope="package")
def shared_rig() -> Iterator[Rig]:
    with make_rig("faults") as made:
        yield made


@pytest.fixture
def rig(shared_rig: Rig) -> Iterator[Rig]:
    """The shared rig; the servers a test started are killed when it ends."""
    yield shared_rig
    shared_rig.stop_servers()
