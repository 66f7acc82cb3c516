"""The audit chain's canonical content, hashing and verification (A2).

Every ``audit_log`` row is sealed by one ``audit_chain`` row::

    row_hash = SHA-256(prev_hash || canonical(row))

``prev_hash`` is the ``row_hash`` of the previous sealed row in id order; the
first row of an app's chain has ``prev_hash = genesis(app_id)``::

    genesis(app_id) = SHA-256(b"oneauth-audit-chain/v1" || 0x00 || UTF-8(app_id))

so a chain (or a checkpoint) of app B never verifies as app A's.

Canonical serialisation, version 1 (fixed; an auditor re-implements it from
this text and the NDJSON export). ``canonical(row)`` is the ASCII bytes of a
JSON array without any whitespace, of exactly these 13 elements in this order:

    [1, id, occurred_at_us, event, outcome, actor_type, actor_id,
     target_type, target_id, request_id, ip_hash, user_agent, details]

* ``1``: the version of this serialisation.
* ``id``: the audit row's id, a JSON integer.
* ``occurred_at_us``: ``occurred_at`` as an integer number of microseconds since
  1970-01-01T00:00:00Z (negative before it), exact (Postgres keeps microseconds).
* the text columns ``event`` ... ``user_agent``: JSON strings, ``null`` for NULL.
* ``details``: the jsonb value as JSON, object keys sorted by Unicode code
  point at every depth, integers as plain decimal digits, other numbers as the
  shortest text that reads back as the same IEEE-754 double (Python ``repr``),
  ``true``/``false``/``null`` as themselves.
* separators ``,`` and ``:`` only. Strings are escaped as Python's
  ``json.dumps(ensure_ascii=True)`` does: ``\\"`` ``\\\\`` ``\\n`` ``\\r`` ``\\t``
  ``\\b`` ``\\f``, other characters below U+0020 and every character above
  U+007E except DEL as ``\\u`` + 4 lowercase hex digits (UTF-16 surrogate pairs
  above U+FFFF), everything else (U+0020-U+007F) as itself.

In Python: ``json.dumps(array, ensure_ascii=True, separators=(",", ":"),
sort_keys=True, allow_nan=False).encode("ascii")``.

Verification walks the chain and the log together in id order (bounded
batches, :class:`ChainCheck` is fed batch after batch) and reports, for the
first bad rows: ``changed`` (content no longer matches its sealed hash),
``deleted`` (sealed but missing from audit_log, or missing rows at a break of
the prev_hash links), ``inserted`` (an audit row inside the sealed range that
the chain never sealed), ``reordered`` (a row holding the content sealed at
another position, or a prev_hash that links to another row than its
predecessor), ``rewritten`` (the chain is self-consistent but its head at a
signed checkpoint differs from what was signed) and checkpoint problems
(signature, app, sequence gaps).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

VERSION = 1
# Every column of audit_log, in canonical order after the version.
COLUMNS = (
    "id",
    "occurred_at",
    "event",
    "outcome",
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "request_id",
    "ip_hash",
    "user_agent",
    "details",
)
SELECT_COLUMNS = ", ".join(COLUMNS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
HASH_LENGTH = 32


def genesis(app_id: str) -> bytes:
    return hashlib.sha256(b"oneauth-audit-chain/v1\x00" + app_id.encode("utf-8")).digest()


def micros(value: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (integer arithmetic)."""
    return (value - _EPOCH) // _MICRO


def _details(value: Any) -> Any:
    # asyncpg hands jsonb over as text, psycopg as parsed JSON.
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def canonical(row: Mapping[str, Any], *, audit_id: int | None = None) -> bytes:
    """The canonical content of an audit row (see the module doc); ``audit_id``
    replaces the row's id (to test whether content belongs at another position)."""
    values = [
        VERSION,
        row["id"] if audit_id is None else audit_id,
        micros(row["occurred_at"]),
        *(row[c] for c in COLUMNS[2:-1]),
        _details(row["details"]),
    ]
    return json.dumps(
        values, ensure_ascii=True, separators=(",", ":"), sort_keys=True, allow_nan=False
    ).encode("ascii")


def row_hash(prev_hash: bytes, row: Mapping[str, Any], *, audit_id: int | None = None) -> bytes:
    return hashlib.sha256(prev_hash + canonical(row, audit_id=audit_id)).digest()


def link(prev_hash: bytes, rows: Iterable[Mapping[str, Any]]) -> list[tuple[int, bytes, bytes]]:
    """(audit_id, prev_hash, row_hash) for ``rows`` in id order, starting after ``prev_hash``."""
    sealed = []
    for row in rows:
        digest = row_hash(prev_hash, row)
        sealed.append((int(row["id"]), prev_hash, digest))
        prev_hash = digest
    return sealed


# --- verification -----------------------------------------------------------------

ProblemKind = Literal[
    "changed", "deleted", "inserted", "reordered", "rewritten", "checkpoint", "unreadable"
]


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    audit_id: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "audit_id": self.audit_id, "message": self.message}


@dataclass(frozen=True, slots=True)
class Anchor:
    """What a verified checkpoint vouches for: the chain's row_hash at ``audit_id``."""

    seq: int
    kind: str
    audit_id: int
    row_hash: bytes
    pruned_through: int | None
    created_at: str = ""


@dataclass
class Report:
    app_id: str
    rows: int = 0  # audit rows checked
    sealed: int = 0  # chain rows checked
    unsealed: int = 0  # audit rows above the chain head (not sealed yet)
    head_id: int | None = None
    checkpoints: int = 0
    checkpoints_matched: int = 0
    pruned_through: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "intact": self.ok,
            "rows": self.rows,
            "sealed": self.sealed,
            "unsealed": self.unsealed,
            "head_id": self.head_id,
            "checkpoints": self.checkpoints,
            "checkpoints_matched": self.checkpoints_matched,
            "pruned_through": self.pruned_through,
            "first_problem": self.problems[0].as_dict() if self.problems else None,
            "problems": [p.as_dict() for p in self.problems],
        }


MAX_PROBLEMS = 20
_WINDOW = 64  # chain rows searched for reordered content


class ChainCheck:
    """Streaming verification of one app's chain: feed batches in id order, then finish.

    ``anchors`` are verified checkpoints (signature, app, sequence already
    checked by the caller), ``head_id`` the newest chain row (rows above it are
    not sealed yet and only counted).
    """

    def __init__(self, app_id: str, anchors: Sequence[Anchor], head_id: int | None) -> None:
        self.report = Report(app_id=app_id, head_id=head_id, checkpoints=len(anchors))
        self._app_id = app_id
        self._head_id = head_id
        self._anchors = deque(sorted(anchors, key=lambda a: (a.audit_id, a.seq)))
        prunes = [a for a in anchors if a.kind == "prune" and a.pruned_through is not None]
        self._prunes = sorted(prunes, key=lambda a: a.audit_id)
        self._prev: bytes | None = None  # row_hash of the last chain row seen
        self._prev_id: int | None = None
        self._recent: deque[tuple[int, bytes, bytes]] = deque(maxlen=_WINDOW)
        self._last_anchor_id = 0

    def _problem(self, kind: ProblemKind, audit_id: int | None, message: str) -> None:
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(Problem(kind, audit_id, message))

    @property
    def done(self) -> bool:
        return len(self.report.problems) >= MAX_PROBLEMS

    def _start(self, audit_id: int, prev_hash: bytes) -> bytes:
        """The hash the first chain row must link to: genesis, or a prune checkpoint's head."""
        if prev_hash == genesis(self._app_id):
            return prev_hash
        before = [a for a in self._prunes if a.audit_id < audit_id]
        if before:
            anchor = before[-1]
            self.report.pruned_through = anchor.pruned_through
            if anchor.row_hash != prev_hash:
                self._problem(
                    "deleted",
                    audit_id,
                    f"row {audit_id}: the chain now starts here, but it does not continue "
                    f"from the head sealed at prune checkpoint #{anchor.seq} (row "
                    f"{anchor.audit_id}): rows between them were deleted or the chain "
                    "was rewritten",
                )
            return prev_hash
        self._problem(
            "deleted",
            audit_id,
            f"row {audit_id}: the chain starts here but does not link to the genesis "
            "hash and no prune checkpoint records the rows before it: rows before "
            f"{audit_id} were deleted",
        )
        return prev_hash

    def _check_anchors(self, upto: int, chain: Mapping[int, bytes]) -> None:
        """Checkpoints at or below ``upto`` (all chain rows <= upto have been seen)."""
        while self._anchors and self._anchors[0].audit_id <= upto:
            anchor = self._anchors.popleft()
            if anchor.kind == "prune" and anchor.audit_id < (self._first_id or 0):
                self.report.checkpoints_matched += 1  # pruned; _start checked the link
                continue
            # A periodic checkpoint whose rows were pruned since (a later prune covers them).
            if (
                anchor.pruned_through is None
                and anchor.audit_id < (self._first_id or 0)
                and any(p.audit_id >= anchor.audit_id for p in self._prunes)
            ):
                self.report.checkpoints_matched += 1
                continue
            found = chain.get(anchor.audit_id)
            if found is None:
                self._problem(
                    "deleted",
                    anchor.audit_id,
                    f"row {anchor.audit_id}: checkpoint #{anchor.seq} signed the chain head "
                    "at this row, which is no longer in the chain",
                )
            elif found != anchor.row_hash:
                since = self._last_anchor_id
                self._problem(
                    "rewritten",
                    anchor.audit_id,
                    f"row {anchor.audit_id}: the chain head here differs from the one signed "
                    f"by checkpoint #{anchor.seq} ({anchor.created_at}): the chain was "
                    f"rewritten at a row after {since} and at or before {anchor.audit_id}",
                )
            else:
                self.report.checkpoints_matched += 1
            self._last_anchor_id = anchor.audit_id

    _first_id: int | None = None

    def feed(
        self,
        log_rows: Sequence[Mapping[str, Any]],
        chain_rows: Sequence[tuple[int, bytes, bytes]],
        upto: int,
    ) -> None:
        """One batch: every audit row and chain row with id in (previous upto, upto]."""
        logs = {int(r["id"]): r for r in log_rows}
        chains = {int(c[0]): (bytes(c[1]), bytes(c[2])) for c in chain_rows}
        if self._first_id is None and chains:
            self._first_id = min(chains)
        seen_hashes: dict[int, bytes] = {}
        for audit_id in sorted(logs.keys() | chains.keys()):
            log_row, sealed = logs.get(audit_id), chains.get(audit_id)
            if sealed is None:
                assert log_row is not None
                self.report.rows += 1
                if self._head_id is not None and audit_id < self._head_id:
                    self._problem(
                        "inserted",
                        audit_id,
                        f"row {audit_id}: in audit_log inside the sealed range but never "
                        "sealed: inserted afterwards",
                    )
                else:
                    self.report.unsealed += 1
                continue
            prev_hash, digest = sealed
            self.report.sealed += 1
            seen_hashes[audit_id] = digest
            if self._prev is None:
                self._start(audit_id, prev_hash)
            elif prev_hash != self._prev:
                relinked = next((r for r in self._recent if r[2] == prev_hash), None)
                if relinked is not None:
                    self._problem(
                        "reordered",
                        audit_id,
                        f"row {audit_id}: its chain entry links to row {relinked[0]}, not "
                        f"to its predecessor {self._prev_id}: the chain was reordered",
                    )
                else:
                    self._problem(
                        "deleted",
                        audit_id,
                        f"row {audit_id}: the chain does not continue from row "
                        f"{self._prev_id}: sealed rows between {self._prev_id} and "
                        f"{audit_id} were deleted",
                    )
            if log_row is None:
                self._problem(
                    "deleted",
                    audit_id,
                    f"row {audit_id}: sealed in the chain but missing from audit_log: deleted",
                )
            else:
                self.report.rows += 1
                self._check_row(audit_id, log_row, prev_hash, digest, chains)
            self._recent.append((audit_id, prev_hash, digest))
            self._prev, self._prev_id = digest, audit_id
        self._check_anchors(upto, seen_hashes | self._recent_map())

    def _recent_map(self) -> dict[int, bytes]:
        return {r[0]: r[2] for r in self._recent}

    def _check_row(
        self,
        audit_id: int,
        row: Mapping[str, Any],
        prev_hash: bytes,
        digest: bytes,
        chains: Mapping[int, tuple[bytes, bytes]],
    ) -> None:
        try:
            if row_hash(prev_hash, row) == digest:
                return
        except (ValueError, TypeError, OverflowError, KeyError):
            self._problem(
                "unreadable", audit_id, f"row {audit_id}: its content cannot be canonicalised"
            )
            return
        # Content sealed at another position nearby: rows were swapped.
        candidates = [(i, p, h) for i, (p, h) in chains.items() if i != audit_id]
        candidates += [r for r in self._recent if r[0] != audit_id]
        for other_id, other_prev, other_hash in candidates:
            if row_hash(other_prev, row, audit_id=other_id) == other_hash:
                self._problem(
                    "reordered",
                    audit_id,
                    f"row {audit_id}: holds the content sealed as row {other_id}: "
                    "rows were reordered",
                )
                return
        self._problem(
            "changed",
            audit_id,
            f"row {audit_id}: its content no longer matches the hash it was sealed with: changed",
        )

    def finish(self) -> Report:
        # Checkpoints above every chain row: the rows they signed are gone.
        self._check_anchors(2**63, self._recent_map())
        return self.report
