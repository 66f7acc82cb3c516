"""Who makes a change to roles and organizations: the audit log's actor."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

ActorType = Literal["user", "operator", "client"]


@dataclass(frozen=True, slots=True)
class Actor:
    type: ActorType
    id: str | None = None

    @classmethod
    def user(cls, user_id: uuid.UUID | str) -> Actor:
        return cls("user", str(user_id))

    @classmethod
    def client(cls, client_id: str) -> Actor:
        return cls("client", client_id)

    @property
    def label(self) -> str:
        """``user:<uuid>``, ``client:<id>`` or ``operator`` (org_invitations.invited_by)."""
        return self.type if self.id is None else f"{self.type}:{self.id}"

    @property
    def user_id(self) -> uuid.UUID | None:
        return uuid.UUID(self.id) if self.type == "user" and self.id else None


# The operator at the CLI (or the later admin API): trusted with every app.
OPERATOR = Actor("operator")
