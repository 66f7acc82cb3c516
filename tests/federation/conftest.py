"""Real upstream identity providers for the federation tests (issue 14), on loopback.

- ``upstream_op``: panva's oidc-provider (npm, pinned in rig/package-lock.json), one
  ``node`` process per test session; see rig/node_op.py. Skipped only when node/npm
  are absent (CI installs them: .ci/run).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from federation.rig.node_op import RigUnavailable, UpstreamOP, node_tools


@pytest.fixture(scope="session")
def upstream_op() -> Iterator[UpstreamOP]:
    """oidc-provider with dynamic registration; ID tokens carry email/name claims."""
    try:
        node_tools()
    except RigUnavailable as exc:
        pytest.skip(str(exc))
    op = UpstreamOP().start()
    try:
        yield op
    finally:
        op.stop()
