"""The long-lived objects one process shares."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import asyncpg
from starlette.requests import Request

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.apps.registry import Registry
from oneauth.auditchain.sealer import Sealer
from oneauth.db.groupcommit import GroupCommit
from oneauth.db.notify import Notifier
from oneauth.db.router import Router
from oneauth.identity.passwords import PasswordHasher
from oneauth.mail.worker import DeliveryWorker
from oneauth.oauth.clients import ClientCache
from oneauth.retention.worker import RetentionWorker
from oneauth.secretbox import SecretBox
from oneauth.settings import Settings
from oneauth.tokens.issue import Issuer
from oneauth.tokens.keystore import KeyStore
from oneauth.webhooks.worker import WebhookWorker


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    registry: Registry
    router: Router
    notifier: Notifier
    keys: KeyStore
    clients: ClientCache
    hasher: PasswordHasher
    box: SecretBox
    # The mail delivery worker; running in this process unless ONEAUTH_EMAIL_WORKER=off.
    delivery: DeliveryWorker | None = None
    # The audit chain's sealer (A2); running in this process unless ONEAUTH_AUDIT_SEALER=off.
    sealer: Sealer | None = None
    # The webhook delivery worker; runs (or not) with the mail worker.
    webhooks: WebhookWorker | None = None
    # The retention worker (oneauth.retention); running here unless ONEAUTH_RETENTION=off.
    retention: RetentionWorker | None = None

    @cached_property
    def ip_hash_key(self) -> bytes:
        # Derived, not configured: rotating the master key re-keys IP hashes too.
        return hashlib.sha256(b"oneauth/ip-hash|" + self.settings.master_key.encode()).digest()

    @cached_property
    def audit_writes(self) -> GroupCommit:
        """Audit rows of work that opened no unit (client_credentials), committed together."""
        return GroupCommit(self.router, audit.INSERT_SQL)

    async def issuer(self, app: AppRecord, conn: asyncpg.Connection) -> Issuer:
        keys = await self.keys.get(app, conn)
        return Issuer(app, policy_of(app), self.settings.issuer_for(app.app_id), keys)

    @classmethod
    def of(cls, request: Request) -> Services:
        services = request.app.state.services
        assert isinstance(services, Services)
        return services
