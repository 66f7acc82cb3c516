"""One rule for a test whose real component is missing (pgbouncer, the Postgres server
binaries, node/npm for the upstream OpenID Provider): a skip on a developer's machine,
a failure where the rig must be complete. `.ci/run` installs every component and sets
``TEST_REQUIRE_FEDERATION_RIG=1`` (the name is older than the pgbouncer and fault
suites that now read it too), so CI never passes by skipping them."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def rig_required() -> bool:
    return os.environ.get("TEST_REQUIRE_FEDERATION_RIG", "") not in ("", "0")


def unavailable(message: str) -> NoReturn:
    """Skip, or fail on CI, because ``message`` says what is missing."""
    if rig_required():
        pytest.fail(f"{message} (the CI rig must be complete: .ci/run installs it)", pytrace=False)
    pytest.skip(message)
