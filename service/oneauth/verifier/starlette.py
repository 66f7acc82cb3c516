"""Re-export of :mod:`oneauth_verifier.starlette` (the ``oneauth-verifier`` distribution),
kept so the server and existing imports of ``oneauth.verifier.starlette`` keep working."""

from oneauth_verifier.starlette import *  # noqa: F403
from oneauth_verifier.starlette import __all__ as __all__
