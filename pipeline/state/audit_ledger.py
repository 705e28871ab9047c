"""The hash-chained audit ledger: append-only rows and the walk that verifies them.

``audit_ledger`` holds every flag status change and analyst action. Each row stores the
SHA-256 of the previous row and its own hash over its content and that previous hash, so
editing or deleting any row breaks the chain; ``audit_ledger_head`` holds the last row's
hash so that deleting the newest row is caught too. A row may carry ``data`` (canonical JSON,
e.g. a suppression's reason, analyst and footprint); it is hashed with the row when present,
so rows written before the column existed keep their hashes.

A full rewrite of the file (edit then re-chain, truncate and fix the head, wipe) is caught
by the heads anchored outside it, :mod:`pipeline.state.ledger_anchor`.

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
    detail TEXT NOT NULL, prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL, data TEXT);
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


def ensure_data_column(db: sqlite3.Connection) -> None:
    """Add the ``data`` column to a ledger created before it existed."""
    if "data" not in ledger_columns(db):
        db.execute("ALTER TABLE audit_ledger ADD COLUMN data TEXT")


def ledger_columns(db: sqlite3.Connection) -> set[str]:
    """The columns of ``audit_ledger`` (empty when the table does not exist)."""
    return {r[1] for r in db.execute("PRAGMA table_info(audit_ledger)")}


def hashed_values(row: dict[str, Any]) -> list[Any]:
    """What a stored row's hash covers: its fields, and its ``data`` when it has any."""
    values = [row[f] for f in _LEDGER_FIELDS]
    return values if row.get("data") is None else [*values, row["data"]]


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
    data: str | None = None
    """Canonical JSON the event needs beyond its text (a suppression's reason and footprint)."""


def has_table(db: sqlite3.Connection, name: str) -> bool:
    """True when the database has a table ``name``."""
    return bool(
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    )


def head(db: sqlite3.Connection) -> tuple[int, str]:
    """(seq, row hash) of the ledger's last row; (0, GENESIS) when it is empty."""
    if not has_table(db, "audit_ledger_head"):
        return 0, GENESIS
    found = db.execute("SELECT seq, row_hash FROM audit_ledger_head WHERE id = 1").fetchone()
    return (int(found[0]), str(found[1])) if found else (0, GENESIS)


def append_entries(db: sqlite3.Connection, entries: Sequence[LedgerEntry], *, now: str) -> None:
    """Chain ``entries`` onto the head, all recorded at ``now`` (ISO 8601, UTC), and move the
    head. Call inside a write transaction of ``db``."""
    seq, prev = head(db)
    for e in entries:
        seq += 1
        values: tuple[Any, ...] = (seq, now, e.aoi_id, e.period, e.run_id, e.flag_id, e.event)
        values += (e.old_status, e.new_status, e.detail)
        h = row_hash(prev, values if e.data is None else (*values, e.data))
        db.execute(
            f"INSERT INTO audit_ledger ({', '.join(_LEDGER_FIELDS)}, prev_hash, row_hash, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, prev, h, e.data),
        )
        prev = h
    if entries:
        db.execute("INSERT OR REPLACE INTO audit_ledger_head VALUES (1, ?, ?)", (seq, prev))


def read_ledger(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every ledger row, in order (none when the table does not exist)."""
    columns = ledger_columns(db)
    if not columns:
        return []
    extra = ", data" if "data" in columns else ""
    cur = db.execute(
        f"SELECT {', '.join(_LEDGER_FIELDS)}, prev_hash, row_hash{extra} FROM audit_ledger ORDER BY seq"
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
        if row_hash(r["prev_hash"], hashed_values(r)) != r["row_hash"]:
            problems.append(LedgerProblem(seq, f"row {seq} was edited: its content does not match its hash"))
        prev, expected_seq = r["row_hash"], seq + 1
    top = None
    if has_table(db, "audit_ledger_head"):
        top = db.execute("SELECT seq, row_hash FROM audit_ledger_head WHERE id = 1").fetchone()
    last = rows[-1] if rows else None
    if top is not None and (last is None or (int(last["seq"]), last["row_hash"]) != tuple(top)):
        problems.append(
            LedgerProblem(
                int(top[0]),
                f"row {top[0]} (the head) is missing or was replaced: the ledger ends at row "
                f"{last['seq'] if last else 0}",
            )
        )
    if top is None and rows:
        problems.append(LedgerProblem(int(rows[-1]["seq"]), "the ledger head record was deleted"))
    return len(rows), (top[1] if top else GENESIS), problems
