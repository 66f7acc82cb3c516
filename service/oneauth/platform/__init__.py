"""The control plane: the reserved app ``platform`` and its API (issue 15).

The platform is a real app (schema, role, keys, users, clients, audit log)
served at ``{public_url}/platform`` instead of ``/apps/platform``. Its users are
the operators (the console signs them in with oneauth itself), its
client-credentials clients call the platform API (``/admin/v1/apps...``), and
its ``audit_log`` is the control-plane audit log. Nothing here reads or writes
another app's users or secrets: the API answers from the registry only.
"""

from __future__ import annotations

from oneauth.db.naming import PLATFORM_APP_ID

__all__ = ["CONSOLE_CLIENT_ID", "PLATFORM_APP_ID", "PLATFORM_DISPLAY_NAME"]

PLATFORM_DISPLAY_NAME = "oneauth platform"
# The console's first-party client of the platform app, a well-known id (it
# fits the clients table's cl_ rule) so the console needs no configuration.
CONSOLE_CLIENT_ID = "cl_oneauth-console"
CONSOLE_CALLBACK_PATH = "/console/callback"
