"""The hash-chained audit ledger: append-only rows and the walk that verifies them.

``audit_ledger`` holds every flag status change and analyst action. Each row stores the
SHA-256 of the previous row and its own hash over its content and that previous hash, so
editing or deleting any row breaks the chain; ``audit_ledger_head`` holds the last row's
hash so that deleting the newest row is caught too.

The functions take the caller's connection: appends must share the transaction of the
flag-state change they record (see :class:`pipeline.state.flag_store.StateStore`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_ledger (
    seq INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, aoi_id TEXT NOT NULL, period TEXT,
    run_id TEXT, flag_id TEXT NOT NULL, event TEXT NOT NULL, old_status TEXT, new_status TEXT,
    detail TEXT NOT NULL, prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, row_hash TEXT NOT NULL);
"""
_LEDGER_FIELDS = (
    "seq",
    "recorded_at",
    "aoi_id",
    "period",
    "run_id",
    "flag_id",
    "event",
    "old_status",
    "new_status",
    "detail",
)


def row_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """SHA-256 (hex) of the previous row's hash and this row's fields as canonical JSON."""
    blob = prev_hash + "|" + json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LedgerProblem:
    """One break in the hash chain."""

    seq: int
    message: str


@dataclass(frozen=True)
class LedgerEntry:
    """An event to append to the ledger."""

    aoi_id: str
    flag_id: str
    event: str
    """``status`` (lifecycle change), ``suppress``, ``unsuppress``, ``lift`` (evidence changed)."""
    old_status: str | None
    new_status: str | None
    detail: str
    period: str | None = None
    run_id: str | None = None


def append_entries(db: sqlite3.Connection, entries: Sequence[LedgerEntry], *, now: str) -> None:
    """Chain ``entries`` onto the head, all recorded at ``now`` (ISO 8601, UTC), and move the
    head. Call inside a write transaction of ``db``."""
    head = db.execute("SELECT seq, row_hash FROM audit_ledger_head WHERE id = 1").fetchone()
    seq, prev = head if head else (0, GENESIS)
    for e in entries:
        seq += 1
        values: tuple[Any, ...] = (seq, now, e.aoi_id, e.period, e.run_id, e.flag_id, e.event)
        values += (e.old_status, e.new_status, e.detail)
        h = row_hash(prev, values)
        db.execute("INSERT INTO audit_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, prev, h))
        prev = h
    if entries:
        db.execute("INSERT OR REPLACE INTO audit_ledger_head VALUES (1, ?, ?)", (seq, prev))


def read_ledger(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every ledger row, in order."""
    cur = db.execute(
        f"SELECT {', '.join(_LEDGER_FIELDS)}, prev_hash, row_hash FROM audit_ledger ORDER BY seq"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def verify_chain(db: sqlite3.Connection) -> tuple[int, str, list[LedgerProblem]]:
    """Walk the chain: (rows checked, head hash, problems). No problems = intact."""
    problems: list[LedgerProblem] = []
    prev, expected_seq = GENESIS, 1
    rows = read_ledger(db)
    for r in rows:
        seq = int(r["seq"])
        if seq != expected_seq:
            problems.append(
                LedgerProblem(seq, f"rows {expected_seq}..{seq - 1} are missing (deleted) before row {seq}")
            )
        if r["prev_hash"] != prev:
            problems.append(LedgerProblem(seq, f"row {seq}: previous-row hash does not match row {seq - 1}"))
        if row_hash(r["prev_hash"], [r[f] for f in _LEDGER_FIELDS]) != r["row_hash"]:
            problems.append(LedgerProblem(seq, f"row {seq} was edited: its content does not match its hash"))
        prev, expected_seq = r["row_hash"], seq + 1
    head = db.execute("SELECT seq, row_hash FROM audit_ledger_head WHERE id = 1").fetchone()
    last = rows[-1] if rows else None
    if head is not None and (last is None or (int(last["seq"]), last["row_hash"]) != tuple(head)):
        problems.append(
            LedgerProblem(
                int(head[0]),
                f"row {head[0]} (the head) is missing or was replaced: the ledger ends at row "
                f"{last['seq'] if last else 0}",
            )
        )
    if head is None and rows:
        problems.append(LedgerProblem(int(rows[-1]["seq"]), "the ledger head record was deleted"))
    return len(rows), (head[1] if head else GENESIS), problems
