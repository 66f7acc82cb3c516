"""The in-process verifier scenario: ``oneauth.verifier.Verifier.verify`` on all cores.

One spawned process per core builds its own Verifier exactly as a resource
server would (issuer, audience, app_id; keys through discovery from the
running service, fetched once before timing), then verifies a pool of real
access tokens issued by the service. Per-call latency is timed around each
``verify``; any exception is an error.

The ceiling is measured in the same processes at the same time: slices of
``Verifier.verify`` alternate with equal slices of the bare ``cryptography``
verify of the same tokens (signature pre-decoded, DER for ES256), the floor
no verifier can beat. Whatever else runs on the machine then hits both alike,
and their ratio stays meaningful on a busy box.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from ops.bench.stats import RunSample, percentile

START_DELAY = 2.0  # first round: spawn, imports and the JWKS fetch
NEXT_DELAY = 0.3  # later rounds: the workers are warm
WARMUP_SECONDS = 0.5
SLICE = 0.25  # seconds of one kind before switching to the other


@dataclass(frozen=True)
class VerifierJob:
    issuer: str
    audience: str
    app_id: str
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class VerifierRep:
    sample: RunSample
    raw_rate: float  # bare signature verifies/s over the same interval, all processes


def _b64(seg: str) -> bytes:
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def raw_verifier(jwks: dict[str, Any], tokens: tuple[str, ...]) -> Callable[[int], None]:
    """verify(i): the bare cryptography check of tokens[i], inputs decoded beforehand."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from jwcrypto.jwk import JWK

    keys = {k["kid"]: JWK(**k).get_op_key("verify") for k in jwks["keys"]}
    prepared = []
    for token in tokens:
        head, _, sig_b64 = token.rpartition(".")
        header = json.loads(_b64(head.split(".")[0]))
        sig = _b64(sig_b64)
        if header["alg"] == "ES256":
            sig = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
        prepared.append((keys[header["kid"]], header["alg"], head.encode(), sig))
    ecdsa, pkcs1, sha256 = ec.ECDSA(hashes.SHA256()), padding.PKCS1v15(), hashes.SHA256()

    def verify(i: int) -> None:
        key, alg, data, sig = prepared[i]
        if alg == "ES256":
            key.verify(sig, data, ecdsa)
        elif alg == "RS256":
            key.verify(sig, data, pkcs1, sha256)
        else:
            key.verify(sig, data)

    return verify


def verifier_worker(job: VerifierJob, start_at: float, seconds: float) -> dict[str, Any]:
    import httpx

    from oneauth.verifier import VerificationError, Verifier

    verifier = Verifier(job.issuer, job.audience, job.app_id)
    verifier.refresh_keys()  # the one discovery + JWKS fetch, outside the timed loop
    doc = httpx.get(job.issuer + "/.well-known/openid-configuration", timeout=10).json()
    raw = raw_verifier(httpx.get(doc["jwks_uri"], timeout=10).json(), job.tokens)
    tokens, n = job.tokens, len(job.tokens)
    latencies: list[float] = []
    errors = count = raw_count = 0
    ours = bare = 0.0
    clock = time.perf_counter
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    end = clock() + seconds * 2  # half the time each
    while clock() < end:
        t0 = clock()
        stop = t0 + SLICE
        while True:
            raw(raw_count % n)
            raw_count += 1
            if clock() >= stop:
                break
        t1 = clock()
        bare += t1 - t0
        stop = t1 + SLICE
        now = t1
        while now < stop:
            token = tokens[count % n]
            before = now
            try:
                verifier.verify(token)
            except VerificationError:
                errors += 1
            now = clock()
            latencies.append(now - before)
            count += 1
        ours += now - t1
    return {
        "count": count,
        "seconds": ours,
        "errors": errors,
        "latencies": latencies,
        "raw_count": raw_count,
        "raw_seconds": bare,
    }


def run(job: VerifierJob, *, processes: int, seconds: float, reps: int) -> list[VerifierRep]:
    ctx = multiprocessing.get_context("spawn")
    out = []
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        for rep in range(reps + 1):  # the first round is the warm-up
            start_at = time.time() + (NEXT_DELAY if rep else START_DELAY)
            length = seconds if rep else WARMUP_SECONDS
            futures = [
                pool.submit(verifier_worker, job, start_at, length) for _ in range(processes)
            ]
            results = [f.result(timeout=START_DELAY + 2 * seconds + 120) for f in futures]
            lat_ms = [x * 1000 for r in results for x in r["latencies"]]
            errors = sum(r["errors"] for r in results)
            rate = sum(r["count"] / r["seconds"] for r in results if r["seconds"] > 0)
            raw_rate = sum(r["raw_count"] / r["raw_seconds"] for r in results if r["raw_seconds"])
            total = sum(r["count"] for r in results)
            sample = RunSample(
                requests=total,
                seconds=total / rate if rate else 0.0,
                p50_ms=percentile(lat_ms, 50),
                p95_ms=percentile(lat_ms, 95),
                p99_ms=percentile(lat_ms, 99),
                max_ms=max(lat_ms),
                errors=errors,
                error_detail={"verification_error": errors},
            )
            out.append(VerifierRep(sample, raw_rate))
    return out[1:]
