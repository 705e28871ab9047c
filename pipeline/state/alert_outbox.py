"""The alert outbox inside the state database (issue 15, case 4: a transactional outbox).

An alert is inserted into ``alert_outbox`` by the same transaction that saves the flag states
creating it (:meth:`pipeline.state.flag_store.StateStore.save_period`), so there is no crash
point between "the flag is now ``ongoing``" and "its ``new`` alert is queued": both land or
neither does. The ``alerts/outbox/*.json`` files that delivery reads are written from this
table afterwards (:func:`queued_alerts`) and rewritten whenever one is missing, so a run
killed after the commit, or one that failed writing its outputs, loses no alert; the next
run (or the night's delivery pass) writes it out.

``alert_outbox``
    One row per alert id (``<flag_id>-<status>-<last_seen>``): the AOI, the run that created
    it, when, and the alert document as JSON. An alert id is inserted once; a rerun that
    finds the same alert leaves the first row as it is.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    alert_id TEXT PRIMARY KEY, aoi_id TEXT NOT NULL, run_id TEXT NOT NULL,
    created_at TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_outbox_aoi ON alert_outbox (aoi_id);
"""


def insert_alerts(
    db: sqlite3.Connection, alerts: Sequence[Mapping[str, Any]], *, run_id: str, now: str
) -> int:
    """Queue ``alerts`` inside the caller's open transaction; returns how many were new.
    Each document gets ``created`` (when it was first queued) unless it has one."""
    added = 0
    for alert in alerts:
        doc = {**alert, "created": alert.get("created") or now}
        cur = db.execute(
            "INSERT OR IGNORE INTO alert_outbox VALUES (?, ?, ?, ?, ?)",
            (
                str(doc["alert_id"]),
                str(doc["aoi_id"]),
                run_id,
                now,
                json.dumps(doc, ensure_ascii=False, sort_keys=True),
            ),
        )
        added += cur.rowcount
    return added


def queued_alerts(state_path: Path, *, aoi_id: str | None = None) -> list[dict[str, Any]]:
    """Every alert queued in the state database (of one AOI), oldest first; [] when the
    database or the table does not exist yet."""
    if not state_path.is_file():
        return []
    con = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, timeout=30.0)
    try:
        have = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alert_outbox'"
        ).fetchone()
        if have is None:
            return []
        sql = "SELECT payload FROM alert_outbox"
        args: tuple[str, ...] = ()
        if aoi_id is not None:
            sql, args = sql + " WHERE aoi_id = ?", (aoi_id,)
        rows = con.execute(sql + " ORDER BY created_at, alert_id", args).fetchall()
    finally:
        con.close()
    return [json.loads(r[0]) for r in rows]
