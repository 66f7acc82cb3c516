"""panva's ``oidc-provider`` (npm) installed once, for whoever runs it on loopback: the
federation tests' upstream OpenID Provider (tests/federation/rig/node_op.py) and the
benchmark's peer (ops/bench/peer.py).

The package and its dependencies are pinned by ``package.json`` + ``package-lock.json``
in ``oidc-provider/`` beside this file and installed with ``npm ci --ignore-scripts``
into a cache directory keyed by the hash of those two files (``$ONEAUTH_RIG_CACHE``,
else ``$XDG_CACHE_HOME/oneauth/federation-rig``, else ``~/.cache/oneauth/federation-rig``;
the name is older than the benchmark): a bare machine installs once, later runs reuse it.
A caller's script (its configuration of the provider) is copied next to that
``node_modules`` by :func:`script_in` and started with ``node``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

NPM_DIR = Path(__file__).resolve().parent / "oidc-provider"
NPM_FILES = ("package.json", "package-lock.json")


class NodeUnavailable(RuntimeError):
    """The machine has no node or npm (a test turns it into a skip, the bench into a note)."""


def node_tools() -> tuple[str, str]:
    """Paths of ``node`` and ``npm``; NodeUnavailable when either is absent."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise NodeUnavailable(
            "node and npm are needed for panva's oidc-provider "
            "(apt-get install nodejs npm; Node >= 20)"
        )
    version = node_version(node)
    major = int(version.lstrip("v").split(".")[0])
    if major < 20:
        # Not a skip: CI must not pass silently with a Node that cannot run it.
        raise RuntimeError(f"oidc-provider 9 needs Node >= 20, this machine has {version}")
    return node, npm


def node_version(node: str) -> str:
    return subprocess.run(  # noqa: S603 (our own argument list, no shell)
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def provider_version() -> str:
    """The pinned oidc-provider version (package.json)."""
    import json

    deps = json.loads((NPM_DIR / "package.json").read_text())["dependencies"]
    return str(deps["oidc-provider"])


def cache_root() -> Path:
    explicit = os.environ.get("ONEAUTH_RIG_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "oneauth" / "federation-rig"


def lock_key() -> str:
    digest = hashlib.sha256()
    for name in NPM_FILES:
        digest.update((NPM_DIR / name).read_bytes())
    return digest.hexdigest()[:20]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two runs at once install once
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install(npm: str) -> Path:
    """``npm ci`` into the cache directory of this lock file (once); returns that directory."""
    root = cache_root()
    key = lock_key()
    target = root / key
    done = target / ".installed"
    if done.exists():
        return target
    with _file_lock(root / f"{key}.lock"):
        if done.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=root))
        try:
            for name in NPM_FILES:
                shutil.copyfile(NPM_DIR / name, work / name)
            proc = subprocess.run(  # noqa: S603 (our own argument list, no shell)
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"npm ci failed in {work}:\n{proc.stdout}\n{proc.stderr}")
            (work / ".installed").write_text(key)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def script_in(target: Path, source: Path) -> Path:
    """``source`` (an ES module) beside the cached node_modules (ES modules resolve
    packages from their own directory), named by its content so concurrent runs of
    other versions coexist."""
    data = source.read_bytes()
    script = target / f"{source.stem}-{hashlib.sha256(data).hexdigest()[:12]}.mjs"
    if not script.exists():
        tmp = target / f".{script.name}.{os.getpid()}"
        tmp.write_bytes(data)
        tmp.replace(script)
    return script
