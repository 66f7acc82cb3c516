"""Numbered plain-SQL migration templates shipped inside the package.

``sql/control/NNNN_name.sql`` builds the control schema ``oneauth``;
``sql/app/NNNN_name.sql`` builds one app's tables without naming any schema (they
run with the app's role and search_path set). Each file's SHA-256 is recorded in
the schema's own ledger; a file changed after it was applied stops the run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

Kind = Literal["control", "app"]
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Template:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


class TemplateError(RuntimeError):
    pass


def sql_root() -> Path:
    """Templates inside the installed wheel, else the source checkout's ``sql/``."""
    packaged = Path(__file__).resolve().parent.parent / "sql"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[3] / "sql"
    if source.is_dir():
        return source
    raise TemplateError("SQL templates not found (expected oneauth/sql or ./sql)")


def load(kind: Kind, root: Path | None = None) -> tuple[Template, ...]:
    return _load(kind, root or sql_root())


@cache
def _load(kind: Kind, root: Path) -> tuple[Template, ...]:
    folder = root / kind
    templates: list[Template] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise TemplateError(f"{path}: template names must look like 0001_name.sql")
        data = path.read_bytes()
        templates.append(
            Template(
                version=int(match.group(1)),
                name=match.group(2),
                sql=data.decode("utf-8"),
                checksum=hashlib.sha256(data).hexdigest(),
            )
        )
    versions = [t.version for t in templates]
    if versions != list(range(1, len(versions) + 1)):
        raise TemplateError(f"{folder}: versions must run 1, 2, 3 ... without gaps: {versions}")
    return tuple(templates)


def latest_version(kind: Kind, root: Path | None = None) -> int:
    return len(load(kind, root))
