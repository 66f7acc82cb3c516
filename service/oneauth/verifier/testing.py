"""Re-export of :mod:`oneauth_verifier.testing` (the ``oneauth-verifier`` distribution),
kept so the server and existing imports of ``oneauth.verifier.testing`` keep working."""

from oneauth_verifier.testing import *  # noqa: F403
from oneauth_verifier.testing import __all__ as __all__
