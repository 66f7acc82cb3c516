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

__all__ = ["OPERATOR", "PASSWORD", "Actor", "app_conn", "make_user", "unique_email"]


def unique_email(prefix: str = "org", domain: str = "example.com") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@{domain}"


@asynccontextmanager
async def app_conn(services: Services, app: AppRecord) -> AsyncIterator[asyncpg.Connection]:
    """One transaction in the app's context through the router (commits on success)."""
    async with services.router.enter(app) as conn:
        yield conn


PASSWORD = "correct horse battery staple 42"


async def make_user(
    services: Services,
    app: AppRecord,
    email: str | None = None,
    *,
    verified: bool = True,
    password: bool = False,
) -> User:
    """A user row; ``password``: with the password PASSWORD (to sign in through the API)."""
    address = email or unique_email()
    hashed = await services.hasher.hash(PASSWORD) if password else None
    async with services.router.enter(app) as conn:
        user_id = await conn.fetchval(
            "INSERT INTO users (email, email_normalized, email_verified, password_hash)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            address,
            normalize_email(address),
            verified,
            hashed,
        )
        user = await by_id(conn, user_id)
    assert user is not None
    return user
