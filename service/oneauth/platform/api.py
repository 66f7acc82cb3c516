"""The platform API, ``/admin/v1/apps...`` (filled in by the next commits)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
