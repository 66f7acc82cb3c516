"""Re-export of :mod:`oneauth_verifier.errors` (the ``oneauth-verifier`` distribution),
kept so the server and existing imports of ``oneauth.verifier.errors`` keep working."""

from oneauth_verifier.errors import *  # noqa: F403
from oneauth_verifier.errors import __all__ as __all__
