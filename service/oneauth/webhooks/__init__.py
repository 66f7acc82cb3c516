"""Per-app webhooks (README "Webhooks"; SECURITY.md W-H1..): endpoints, the
transactional outbox of deliveries (``emit``) and the delivery worker."""

from oneauth.webhooks.events import EVENT_TYPES, SUBSCRIPTIONS, app_of, emit

__all__ = ["EVENT_TYPES", "SUBSCRIPTIONS", "app_of", "emit"]
