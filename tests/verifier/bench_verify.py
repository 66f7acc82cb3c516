"""Throughput of Verifier.verify against a bare signature check, per algorithm.

Run: ``.venv/bin/python tests/verifier/bench_verify.py``. Not collected by
pytest. "raw" is the ``cryptography`` verify call alone on pre-decoded
inputs (DER-converted for ES256), i.e. the floor no verifier can beat;
"jwcrypto" is ``jwcrypto.jws.JWS`` deserialize + verify, for comparison.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwk, jws

from oneauth.verifier.testing import TokenMinter

ISSUER = "http://127.0.0.1:8000/apps/shop"
POOL = 64


def _b64(seg: str) -> bytes:
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def _rate(fn: Callable[[str], object], tokens: list[str], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for token in tokens:
            fn(token)
        best = max(best, len(tokens) / (time.perf_counter() - start))
    return best


def _raw_rate(alg: str, minter: TokenMinter, tokens: list[str], rounds: int) -> float:
    """The bare ``cryptography`` verify call over pre-decoded inputs."""
    public: object = jwk.JWK(**minter.public_jwk()).get_op_key("verify")
    inputs: list[tuple[bytes, bytes]] = []
    for token in tokens:
        head, _, sig_seg = token.rpartition(".")
        raw = _b64(sig_seg)
        if alg == "ES256":
            raw = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
        inputs.append((raw, head.encode()))
    ecdsa, pkcs1, sha256 = ec.ECDSA(hashes.SHA256()), padding.PKCS1v15(), hashes.SHA256()
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        # One loop per algorithm so the timed loop is only the verify call.
        if isinstance(public, ec.EllipticCurvePublicKey):
            for sig, data in inputs:
                public.verify(sig, data, ecdsa)
        elif isinstance(public, rsa.RSAPublicKey):
            for sig, data in inputs:
                public.verify(sig, data, pkcs1, sha256)
        elif isinstance(public, ed25519.Ed25519PublicKey):
            for sig, data in inputs:
                public.verify(sig, data)
        best = max(best, len(inputs) / (time.perf_counter() - start))
    return best


def main() -> None:
    for alg in ("ES256", "EdDSA", "RS256"):
        minter = TokenMinter(ISSUER, app_id="shop", audience="orders-api", alg=alg)
        verifier = minter.verifier()
        tokens = [
            minter.mint(sub=f"user-{i}", scope="openid profile orders:read", roles=["staff"])
            for i in range(POOL)
        ]
        public = jwk.JWK(**minter.public_jwk())

        def with_jwcrypto(token: str, public: jwk.JWK = public, alg: str = alg) -> object:
            obj = jws.JWS()
            obj.deserialize(token)
            return obj.verify(public, alg=alg)

        rounds = 12 if alg == "RS256" else 6
        r_raw = r_ours = r_jwc = 0.0
        for _ in range(3):  # interleave so drift hits all three alike
            r_raw = max(r_raw, _raw_rate(alg, minter, tokens, rounds))
            r_ours = max(r_ours, _rate(verifier.verify, tokens, rounds))
            r_jwc = max(r_jwc, _rate(with_jwcrypto, tokens, rounds // 2))
        print(
            f"{alg:6} raw {r_raw:8.0f}/s  verify {r_ours:8.0f}/s ({r_ours / r_raw:5.1%})"
            f"  jwcrypto JWS {r_jwc:8.0f}/s ({r_jwc / r_raw:5.1%})"
        )


if __name__ == "__main__":
    main()
