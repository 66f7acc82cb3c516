"""The admin console under ``/console`` (issue 15).

Server-rendered pages for operators, who sign in with oneauth itself (an OIDC
relying party of the reserved ``platform`` app, :mod:`.rp`); a server-side
session (:mod:`.session`); the app picker (:mod:`.grants`: one SQL query per
page); per-app pages that read and change an app only through its admin API
with a delegated, app-scoped token (:mod:`.api`); the views (:mod:`.views`).
"""
