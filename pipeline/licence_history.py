"""Licence history of registered sites, as asm-monitor saw the registry night after night.

Registries publish the current state of a title, not its history (SIGMINE gives the phase and
the last administrative event). A buyer needs to know that a title was an exploration permit
last year and a concession today, or the reverse, so every run records each site's licence
state in the SQLite state file (``Settings.state_path``), table ``registry_licence_history``:
one row per distinct (phase, licence status, last event) of a site, with the run and the day
it was first seen. A rerun or an unchanged registry adds nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "site_id",
    "event_date",
    "event",
    "phase",
    "licence_status",
    "licence_kind",
    "allows_extraction",
    "first_recorded",
    "first_run_id",
]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_licence_history (
    aoi_id TEXT NOT NULL, site_id TEXT NOT NULL, event_date TEXT NOT NULL, event TEXT NOT NULL,
    phase TEXT NOT NULL, licence_status TEXT NOT NULL, licence_kind TEXT NOT NULL,
    allows_extraction INTEGER NOT NULL, first_recorded TEXT NOT NULL, first_run_id TEXT NOT NULL,
    PRIMARY KEY (aoi_id, site_id, phase, licence_status, event_date, event));
"""


def _text(value: object) -> str:
    """A registry value as key text: '' for blanks (SQLite treats NULLs in a key as distinct)."""
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value).strip()


def record_licences(
    state_path: Path, *, aoi_id: str, sites: pd.DataFrame, run_id: str, today: str | None = None
) -> pd.DataFrame:
    """Record the sites' licence states and return the history of these sites.

    Parameters
    ----------
    state_path
        The SQLite state file (created when missing).
    sites
        MineSite rows: ``site_id``, ``phase``, ``licence_status``, ``licence_kind``,
        ``allows_extraction``, and ``last_event_date`` / ``last_event`` when the registry has them.
    today
        ISO date stored as ``first_recorded`` for new rows (default: today, UTC).

    Returns
    -------
    DataFrame
        ``HISTORY_COLUMNS``, oldest first per site (by event date, then first recorded).
    """
    day = today or datetime.now(UTC).date().isoformat()
    rows = [
        (
            aoi_id,
            _text(r.get("site_id")),
            _text(r.get("last_event_date")),
            _text(r.get("last_event")),
            _text(r.get("phase")),
            _text(r.get("licence_status")),
            _text(r.get("licence_kind")),
            int(bool(r.get("allows_extraction"))),
            day,
            run_id,
        )
        for r in sites.drop(columns="geometry", errors="ignore").to_dict("records")
    ]
    Path(state_path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(state_path, timeout=30.0, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout=30000")
        con.executescript(_SCHEMA)
        con.execute("BEGIN IMMEDIATE")
        before = con.total_changes
        try:
            con.executemany(
                "INSERT OR IGNORE INTO registry_licence_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        added = con.total_changes - before
        history = pd.read_sql_query(
            f"SELECT {', '.join(HISTORY_COLUMNS)} FROM registry_licence_history WHERE aoi_id = ?",
            con,
            params=(aoi_id,),
        )
    finally:
        con.close()
    log.info("AOI %s: %d licence states recorded (%d new)", aoi_id, len(rows), added)
    history = history[history["site_id"].isin({r[1] for r in rows})].copy()
    history["allows_extraction"] = history["allows_extraction"].astype(bool)
    # a blank event date sorts by the day it was first seen
    order = history["event_date"].where(history["event_date"] != "", history["first_recorded"])
    history = history.assign(_o=order).sort_values(["site_id", "_o", "first_recorded", "phase"])
    return history.drop(columns="_o").reset_index(drop=True)[HISTORY_COLUMNS]
