"""What the directory, clients, providers, keys and settings routes share (issue 15)."""

from __future__ import annotations

from datetime import datetime

from oneauth.admin.guard import AdminCaller
from oneauth.orgs.actor import Actor

PREFIX = "/admin/v1"
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def actor_of(caller: AdminCaller) -> Actor:
    """The services' actor for an admin caller: the acting client, or the operator of
    a console-delegated token (never a user: the org services do not limit it)."""
    return Actor(caller.actor_type, caller.actor_id)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
