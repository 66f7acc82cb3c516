"""Strategies: one module per way of proving a factor (issue 12, STYLE.md).

The flow engine (:mod:`oneauth.flows.engine`) knows no factor; it calls the
strategy named by the request through :data:`REGISTRY`. A new factor is one
new module here plus one line below.
"""

from __future__ import annotations

from oneauth.errors import ValidationFailed
from oneauth.strategies import mailed, password, recovery_code, totp, webauthn
from oneauth.strategies.base import Payload, Strategy, StrategyKind, Then

__all__ = ["REGISTRY", "Payload", "Strategy", "StrategyKind", "Then", "get", "second_factors"]

REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        password.STRATEGY,
        mailed.EMAIL_CODE,
        mailed.MAGIC_LINK,
        totp.STRATEGY,
        recovery_code.STRATEGY,
        webauthn.STRATEGY,
    )
}


def get(name: str, *, second: bool = False) -> Strategy:
    """The strategy called ``name``; ``second``: only one that can be a second factor."""
    strategy = REGISTRY.get(name)
    if strategy is None or (second and strategy.kind == "first"):
        choices = second_factors() if second else tuple(REGISTRY)
        raise ValidationFailed(
            f"factor must be one of {', '.join(choices)}", extra={"field": "factor"}
        )
    return strategy


def second_factors() -> tuple[str, ...]:
    return tuple(n for n, s in REGISTRY.items() if s.kind != "first")
