"""Helpers for the organization tests: users inserted through the app context."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from oneauth.apps.models import AppRecord
from oneauth.identity.users import User, by_id, normalize_email
from oneauth.orgs.actor import OPERATOR, Actor
from oneauth.services import Services

__all__ = ["OPERATOR", "Actor", "app_conn", "make_user", "unique_email"]


def unique_email(prefix: str = "org", domain: str = "example.com") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@{domain}"


@asynccontextmanager
async def app_conn(services: Services, app: AppRecord) -> AsyncIterator[asyncpg.Connection]:
    """One transaction in the app's context through the router (commits on success)."""
    async with services.router.enter(app) as conn:
        yield conn


async def make_user(
    services: Services, app: AppRecord, email: str | None = None, *, verified: bool = True
) -> User:
    address = email or unique_email()
    async with services.router.enter(app) as conn:
        user_id = await conn.fetchval(
            "INSERT INTO users (email, email_normalized, email_verified) VALUES ($1, $2, $3)"
            " RETURNING id",
            address,
            normalize_email(address),
            verified,
        )
        user = await by_id(conn, user_id)
    assert user is not None
    return user
