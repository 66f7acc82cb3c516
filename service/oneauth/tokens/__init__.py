"""Per-app signing keys (``oneauth.tokens.keys``) and compact JWS signing (``.jwt``).

Pure code: no database, no I/O. Private keys are stored sealed with
``oneauth.secretbox.SecretBox`` by the caller (SECURITY.md A2, T3).
"""
