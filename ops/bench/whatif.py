"""Run ``oneauth serve`` with experimental patches: measure a fix before writing it.

``python -m ops.bench --whatif rsa_skip,keys_ttl=3600`` starts the
service through this script instead of the ``oneauth`` entry point. The patches are
applied at import, at the top level, so uvicorn's spawned workers (which re-run
the parent's main script as ``__mp_main__``) get them too. The service's code
is not touched; results of such a run are marked as a what-if in the report.

Patches (BENCH_WHATIF, comma-separated):

* ``rsa_skip``: load RSA private keys without re-validating them
  (``JWK.unsafe_skip_rsa_key_validation``); keys come from the AES-GCM sealed
  store, so their integrity is already authenticated;
* ``keys_ttl=N``: the KeyStore's cache TTL in seconds (the service uses 300).

Former what-ifs that became settings (pass them with ``--service-env``):
argon2 threads per worker (``ONEAUTH_PASSWORD_HASH_THREADS``) and app-affine
connection shards (``ONEAUTH_POOL_SHARDS``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

KNOWN = ("rsa_skip", "keys_ttl")


def parse(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, value = item.partition("=")
        if name not in KNOWN:
            raise ValueError(f"unknown what-if patch {name!r}; known: {', '.join(KNOWN)}")
        out[name] = value
    return out


def _kwdefault(fn: Any, name: str, value: object) -> None:
    """Change the default of a keyword-only parameter (the callers pass none)."""
    defaults = fn.__kwdefaults__
    if defaults is None or name not in defaults:
        raise RuntimeError(f"{fn.__qualname__} has no keyword-only parameter {name!r} any more")
    defaults[name] = value


def apply(patches: dict[str, str]) -> None:
    if "rsa_skip" in patches:
        from jwcrypto import jwk

        def _rsa_pri(self: Any) -> Any:
            key = self._cache_pri_k
            if key is None:
                key = self._rsa_pri_n().private_key(unsafe_skip_rsa_key_validation=True)
                self._cache_pri_k = key
            return key

        jwk.JWK._rsa_pri = _rsa_pri
    if "keys_ttl" in patches:
        from oneauth.tokens.keystore import KeyStore

        _kwdefault(KeyStore.__init__, "ttl", float(patches["keys_ttl"]))


apply(parse(os.environ.get("BENCH_WHATIF", "")))

if __name__ == "__main__":
    from oneauth.cli.main import main

    main(sys.argv[1:])
