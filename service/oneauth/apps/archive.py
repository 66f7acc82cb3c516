"""The export archive of one app: a tar of named members with a sealed manifest (X1, X2).

Members (plain tar, no compression: ``schema.dump`` is pg_dump's compressed custom format):

* ``manifest.json``: format version, app_id, schema version and the migration ledger,
  creation time, oneauth and PostgreSQL versions, and the sha256 and size of every
  other member;
* ``manifest.seal``: sha256 of ``manifest.json`` sealed with the master key (context bound
  to the app id). Checksums alone detect a damaged file; the seal also detects one that
  was altered, since only a holder of the master key can make it (X1);
* ``registry.json``: the app's registry row; ``app_key.json``: its wrapped data key row
  (still sealed by the master key; ``null`` before per-app keys existed);
  ``audit_checkpoints.json``: the control schema's signed checkpoints of its audit chain;
* ``schema.dump``: ``pg_dump -Fc -n <schema>`` from the same snapshot as the rest.

Reading never extracts into the file system by name: only the expected members, regular
files only, each once, are copied into a private directory (no path traversal).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneauth.secretbox import SecretBox, SecretBoxError

FORMAT = "oneauth-app-export"
FORMAT_VERSION = 1
JSON_MEMBERS = ("registry.json", "app_key.json", "audit_checkpoints.json")
DUMP_MEMBER = "schema.dump"
ALL_MEMBERS = frozenset({"manifest.json", "manifest.seal", *JSON_MEMBERS, DUMP_MEMBER})
# JSON members are small (a registry row, one key row, checkpoints); a cap keeps a
# crafted archive from filling memory before its checksum is even checked.
MAX_JSON_BYTES = 64 * 1024 * 1024


class ArchiveError(ValueError):
    """The file is not a usable export of this installation; the message says why."""


def seal_context(app_id: str) -> str:
    return f"export:{app_id}/manifest"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(
    out: Path,
    manifest: dict[str, Any],
    json_members: dict[str, Any],
    dump: Path,
    box: SecretBox,
) -> dict[str, Any]:
    """Write the archive atomically (a temporary file renamed into place); the manifest."""
    blobs = {
        name: json.dumps(json_members[name], sort_keys=True, default=str).encode()
        for name in JSON_MEMBERS
    }
    members: dict[str, dict[str, Any]] = {
        name: {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
        for name, blob in blobs.items()
    }
    members[DUMP_MEMBER] = {"sha256": sha256_file(dump), "size": dump.stat().st_size}
    manifest = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION}
    manifest["members"] = members
    manifest_bytes = json.dumps(manifest, sort_keys=True, indent=2).encode()
    seal = box.seal(
        hashlib.sha256(manifest_bytes).hexdigest().encode(),
        context=seal_context(str(manifest["app_id"])),
    ).encode()
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, blob in (("manifest.json", manifest_bytes), ("manifest.seal", seal)):
            _add_bytes(tar, name, blob)
        for name, blob in blobs.items():
            _add_bytes(tar, name, blob)
        info = tar.gettarinfo(str(dump), arcname=DUMP_MEMBER)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o600
        with dump.open("rb") as f:
            tar.addfile(info, f)
    tmp.chmod(0o600)  # it holds password hashes and sealed keys
    tmp.replace(out)
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, blob: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(blob)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(blob))


@dataclass(frozen=True)
class Archive:
    manifest: dict[str, Any]
    registry: dict[str, Any]
    app_key: dict[str, Any] | None
    audit_checkpoints: list[dict[str, Any]]
    dump: Path

    @property
    def app_id(self) -> str:
        return str(self.manifest["app_id"])

    @property
    def schema_version(self) -> int:
        return int(self.manifest["schema_version"])


def read(path: Path, workdir: Path, box: SecretBox) -> Archive:
    """Open and check an archive: member set, seal, checksums. ``schema.dump`` lands in
    ``workdir``. Raises ArchiveError with a message an operator can act on."""
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file") from None
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"{path} is not a oneauth export (not a tar archive: {exc})") from None
    small: dict[str, bytes] = {}
    dump = workdir / DUMP_MEMBER
    seen: set[str] = set()
    try:
        with tar:
            for info in tar:
                name = info.name
                if name not in ALL_MEMBERS:
                    raise ArchiveError(f"{path}: unexpected member {name!r} (not a oneauth export)")
                if name in seen:
                    raise ArchiveError(f"{path}: member {name!r} appears twice")
                if not info.isreg():
                    raise ArchiveError(f"{path}: member {name!r} is not a regular file")
                seen.add(name)
                src = tar.extractfile(info)
                assert src is not None
                if name == DUMP_MEMBER:
                    with dump.open("wb") as f:
                        for block in iter(lambda src=src: src.read(1 << 20), b""):  # type: ignore[misc]
                            f.write(block)
                else:
                    if info.size > MAX_JSON_BYTES:
                        raise ArchiveError(f"{path}: member {name!r} is too large")
                    small[name] = src.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{path} is damaged (truncated or corrupt tar: {exc})") from None
    missing = sorted(ALL_MEMBERS - seen)
    if missing:
        raise ArchiveError(f"{path} is incomplete: missing {', '.join(missing)}")
    try:
        manifest = json.loads(small["manifest.json"])
    except ValueError:
        raise ArchiveError(f"{path}: manifest.json is not valid JSON (damaged)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path} is not a oneauth export (manifest format)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(
            f"{path}: export format version {manifest.get('format_version')!r} is not "
            f"supported by this release (it reads version {FORMAT_VERSION})"
        )
    app_id = manifest.get("app_id")
    try:
        sealed_digest = box.open(
            small["manifest.seal"].decode("ascii", "replace"), context=seal_context(str(app_id))
        ).decode()
    except SecretBoxError:
        raise ArchiveError(
            f"{path}: the manifest's seal does not open: the archive was altered, or was "
            "made by an installation with a different master key (configure that key, "
            "ONEAUTH_MASTER_KEY accepts several)"
        ) from None
    if sealed_digest != hashlib.sha256(small["manifest.json"]).hexdigest():
        raise ArchiveError(f"{path}: manifest.json was altered after it was sealed")
    members = manifest.get("members")
    if not isinstance(members, dict) or set(members) != ALL_MEMBERS - {
        "manifest.json",
        "manifest.seal",
    }:
        raise ArchiveError(f"{path}: the manifest does not list the archive's members")
    for name, expected in members.items():
        actual = (
            sha256_file(dump) if name == DUMP_MEMBER else hashlib.sha256(small[name]).hexdigest()
        )
        if actual != expected.get("sha256"):
            raise ArchiveError(
                f"{path}: member {name} does not match its checksum in the manifest "
                "(the archive is damaged)"
            )
    try:
        registry = json.loads(small["registry.json"])
        app_key = json.loads(small["app_key.json"])
        checkpoints = json.loads(small["audit_checkpoints.json"])
    except ValueError:
        raise ArchiveError(f"{path}: a JSON member does not parse") from None
    if not isinstance(registry, dict) or registry.get("app_id") != app_id:
        raise ArchiveError(f"{path}: registry.json is not app {app_id!r}'s row")
    return Archive(manifest, registry, app_key, list(checkpoints or []), dump)
