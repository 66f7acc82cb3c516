"""CPU-bound ceilings: argon2id verifies and raw signatures per second.

Each rate is measured in separate processes (spawned, so no state or GIL is
shared with the harness), one per core for "all cores" and one for "per core".
All processes start at the same wall-clock instant and stop at the same one,
and each reports its own count and elapsed time, so the sum is a true
concurrent rate. The processes are started and given their keys once, before
any measurement.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ops.bench.loadrun import MAX_RETRIES
from ops.bench.procstat import CLK_TCK, NOISE_CORES, machine_ticks

from oneauth.identity.passwords import PasswordHasher

# A typical access token's signing input (header.payload), ~400 bytes.
SIGNING_INPUT = b"eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6InRlc3QifQ." + b"x" * 340
PASSWORD = "correct horse battery staple"
# Time between submitting a measurement and its common start: enough for a
# warm pool process to pick the task up.
START_DELAY = 0.3

# Per worker process: built once by _init, so no measurement pays for imports,
# key generation or the hasher's set-up.
_STATE: dict[str, Any] = {}


def _init() -> None:
    hasher = PasswordHasher(max_workers=1)
    _STATE["hasher"] = hasher
    _STATE["stored"] = hasher.hash_sync(PASSWORD)
    for alg in ALGS:
        _STATE[alg] = _signer(alg)


def _ready(seconds: float) -> int:
    time.sleep(seconds)  # keeps this worker busy so the pool starts the others
    return len(_STATE)


def _until(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def _loop(op: Callable[[], object], start_at: float, seconds: float) -> tuple[int, float]:
    _until(start_at)
    count, t0 = 0, time.perf_counter()
    stop = t0 + seconds
    while True:
        op()
        count += 1
        if time.perf_counter() >= stop:
            break
    return count, time.perf_counter() - t0


def argon2_worker(start_at: float, seconds: float) -> tuple[int, float]:
    """Verify one stored hash repeatedly, with the service's hasher and parameters."""
    hasher, stored = _STATE["hasher"], _STATE["stored"]
    return _loop(lambda: hasher.verify_sync(stored, PASSWORD), start_at, seconds)


ALGS = ("ES256", "RS256", "EdDSA")


def _signer(alg: str) -> tuple[Callable[[], object], Callable[[], object]]:
    """(sign, verify) closures over a fresh key of ``alg``, straight on ``cryptography``."""
    data = SIGNING_INPUT
    if alg == "ES256":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        ecdsa = ec.ECDSA(hashes.SHA256())
        ec_sig, ec_pub = ec_key.sign(data, ecdsa), ec_key.public_key()
        return (lambda: ec_key.sign(data, ecdsa)), (lambda: ec_pub.verify(ec_sig, data, ecdsa))
    if alg == "RS256":
        rsa_key = rsa.generate_private_key(65537, 2048)
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        rsa_sig, rsa_pub = rsa_key.sign(data, pkcs1, sha256), rsa_key.public_key()
        return (
            (lambda: rsa_key.sign(data, pkcs1, sha256)),
            (lambda: rsa_pub.verify(rsa_sig, data, pkcs1, sha256)),
        )
    if alg == "EdDSA":
        ed_key = Ed25519PrivateKey.generate()
        ed_sig, ed_pub = ed_key.sign(data), ed_key.public_key()
        return (lambda: ed_key.sign(data)), (lambda: ed_pub.verify(ed_sig, data))
    raise ValueError(f"unknown alg {alg}")


def signature_worker(alg: str, op: str, start_at: float, seconds: float) -> tuple[int, float]:
    sign, verify = _STATE[alg]
    return _loop(sign if op == "sign" else verify, start_at, seconds)


class CpuPool:
    """``cores`` warm worker processes (spawned: nothing shared with the harness)."""

    def __init__(self, cores: int, *, retries: int = MAX_RETRIES) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.cores = cores
        self.disturbed: list[str] = []
        self.retries = retries
        self._pool = ProcessPoolExecutor(max_workers=cores, mp_context=ctx, initializer=_init)
        # Occupy every worker at once so that all of them exist and are initialised.
        for f in [self._pool.submit(_ready, 0.5) for _ in range(cores)]:
            f.result(timeout=120)

    def rate(
        self,
        fn: Callable[..., tuple[int, float]],
        args: tuple[Any, ...],
        processes: int,
        seconds: float,
    ) -> float:
        """Sum of per-process rates, all ``processes`` running over the same interval.

        A run during which the machine was busier than our processes account
        for (someone else used more than NOISE_CORES) is repeated, at most
        MAX_RETRIES times; ``self.disturbed`` keeps what was thrown away.
        """
        for attempt in range(self.retries + 1):
            start_at = time.time() + START_DELAY
            futures = [self._pool.submit(fn, *args, start_at, seconds) for _ in range(processes)]
            busy_before, t0 = machine_ticks()[0], time.monotonic()
            results = [f.result(timeout=START_DELAY + seconds + 120) for f in futures]
            busy = (machine_ticks()[0] - busy_before) / CLK_TCK / (time.monotonic() - t0)
            rate = sum(count / elapsed for count, elapsed in results if elapsed > 0)
            # Our processes were busy for `seconds` of the START_DELAY + seconds window.
            ours = processes * seconds / (START_DELAY + seconds)
            if busy - ours <= NOISE_CORES or attempt == self.retries:
                return rate
            self.disturbed.append(f"{fn.__name__}{args}: {rate:,.0f}/s, other {busy - ours:.2f}")
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> CpuPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def argon2_parameters() -> dict[str, int]:
    p = PasswordHasher(max_workers=1)
    try:
        params = p.parameters
        return {
            "memory_kib": params.memory_cost,
            "time_cost": params.time_cost,
            "parallelism": params.parallelism,
        }
    finally:
        p.close()
