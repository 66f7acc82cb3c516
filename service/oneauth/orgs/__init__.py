"""Roles and organizations inside one app (issue 13).

Everything here runs on a connection already inside the app's context (the
router's transaction, or the CLI's ``async_app_transaction``): the /v1 API, the
hosted pages, the CLI and the later admin API are thin layers over the same
functions. An organization is a tenant *inside* its app, never across apps
(B1): its rows live in the app's schema only.
"""
