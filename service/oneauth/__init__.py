"""oneauth: one auth backend for many apps, each with its own identity.

Every app gets its own Postgres schema and role, its own signing keys, users,
sessions and clients. Nothing crosses an app boundary.
"""

__version__ = "0.1.0"
