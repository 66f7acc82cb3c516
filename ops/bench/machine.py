"""What the numbers were measured on: cores, CPU model, library and server versions."""

from __future__ import annotations

import os
import platform
import ssl
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from ops.bench.wrk import wrk_version

PACKAGES = (
    "oneauth",
    "uvicorn",
    "starlette",
    "asyncpg",
    "psycopg",
    "cryptography",
    "argon2-cffi",
    "jwcrypto",
    "uvloop",
    "httptools",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def postgres_version(bindir: Path | None) -> str:
    exe = str(bindir / "postgres") if bindir else "postgres"
    try:
        proc = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() or "unknown"


def _openssl_of_cryptography() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return str(backend.openssl_version_text())
    except Exception:  # the attribute moved between releases; informational only
        return "unknown"


def machine_info(bindir: Path | None) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count() or 1,
        "cpu_model": cpu_model(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssl_python": ssl.OPENSSL_VERSION,
        "openssl_cryptography": _openssl_of_cryptography(),
        "postgres": postgres_version(bindir),
        "wrk": wrk_version(),
        "packages": versions,
    }


def describe(info: dict[str, Any]) -> str:
    pk = info["packages"]
    return "\n".join(
        [
            f"machine: {info['cores']} cores, {info['cpu_model']}, {info['memory_gib']} GiB, "
            f"Linux {info['kernel']}",
            f"python {info['python']}; {info['openssl_python']}; "
            f"cryptography {pk['cryptography']} ({info['openssl_cryptography']})",
            f"{info['postgres']}; {info['wrk']}",
            "packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()),
        ]
    )
