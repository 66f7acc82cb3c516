"""oneauth: one auth backend for many apps, each with its own identity.

Every app gets its own Postgres schema and role, its own signing keys, users,
sessions and clients. Nothing crosses an app boundary.
"""

# One version source for both wheels: oneauth-verifier's (hatch reads the same file).
from oneauth_verifier._version import __version__

__all__ = ["__version__"]
