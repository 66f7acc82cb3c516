"""The long-lived objects one process shares: pool, registry, router, settings."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from starlette.requests import Request

from oneauth.apps.registry import Registry
from oneauth.db.router import Router
from oneauth.settings import Settings


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    registry: Registry
    router: Router

    @classmethod
    def of(cls, request: Request) -> Services:
        services = request.app.state.services
        assert isinstance(services, Services)
        return services
