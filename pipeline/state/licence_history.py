"""Licence history of registered sites, as asm-monitor saw the registry night after night.

Registries publish the current state of a title, not its history (SIGMINE gives the phase and
the last administrative event). A buyer needs to know that a title was an exploration permit
last year and a concession today, or the reverse, so every run records each site's licence
state in the SQLite state file (``Settings.state_path``), table ``registry_licence_history``:
a row whenever a site's state (phase, licence status and kind, last registry event) differs
from the last one recorded, with the run and the day it was first seen. A rerun or an
unchanged registry adds nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
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
    seq INTEGER PRIMARY KEY AUTOINCREMENT, aoi_id TEXT NOT NULL, site_id TEXT NOT NULL,
    event_date TEXT NOT NULL, event TEXT NOT NULL, phase TEXT NOT NULL, licence_status TEXT NOT NULL,
    licence_kind TEXT NOT NULL, allows_extraction INTEGER NOT NULL, first_recorded TEXT NOT NULL,
    first_run_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS registry_licence_history_site
    ON registry_licence_history (aoi_id, site_id, seq);
"""
_STATE = ("event_date", "event", "phase", "licence_status", "licence_kind", "allows_extraction")
_LATEST = f"""
SELECT site_id, {", ".join(_STATE)} FROM registry_licence_history AS h
WHERE aoi_id = ? AND seq = (
    SELECT max(seq) FROM registry_licence_history WHERE aoi_id = h.aoi_id AND site_id = h.site_id)
"""


def _text(value: object) -> str:
    """A registry value as text; '' for blanks, so equal states compare equal."""
    if value is None or value is pd.NaT or value is pd.NA:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value).strip()


def _allows(value: object) -> int:
    """1 only for a true value: a blank is not a permission."""
    if isinstance(value, bool | np.bool_):
        return int(bool(value))
    return int(isinstance(value, int | float) and value == value and bool(value))  # NaN is blank


def record_licences(
    state_path: Path, *, aoi_id: str, sites: pd.DataFrame, run_id: str, today: str | None = None
) -> pd.DataFrame:
    """Record the sites' licence states and return the history of these sites.

    A site gets a row when its state (phase, status, kind, whether it allows extraction, last
    registry event) differs from its latest recorded row, so a title that goes active ->
    suspended -> active shows all three.

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
        ``HISTORY_COLUMNS``, per site in the order the states were recorded (oldest first).
    """
    day = today or datetime.now(UTC).date().isoformat()
    current = {
        _text(r.get("site_id")): (
            _text(r.get("last_event_date")),
            _text(r.get("last_event")),
            _text(r.get("phase")),
            _text(r.get("licence_status")),
            _text(r.get("licence_kind")),
            _allows(r.get("allows_extraction")),
        )
        for r in sites.drop(columns="geometry", errors="ignore").to_dict("records")
    }
    Path(state_path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(state_path, timeout=30.0, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout=30000")
        con.executescript(_SCHEMA)
        # IMMEDIATE: two runs of one AOI never both append the same change
        con.execute("BEGIN IMMEDIATE")
        try:
            latest = {row[0]: tuple(row[1:]) for row in con.execute(_LATEST, (aoi_id,))}
            new = [
                (aoi_id, sid, *state, day, run_id)
                for sid, state in sorted(current.items())
                if latest.get(sid) != state
            ]
            con.executemany(
                "INSERT INTO registry_licence_history (aoi_id, site_id, "
                f"{', '.join(_STATE)}, first_recorded, first_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                new,
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        history = pd.read_sql_query(
            f"SELECT {', '.join(HISTORY_COLUMNS)} FROM registry_licence_history "
            "WHERE aoi_id = ? ORDER BY site_id, seq",
            con,
            params=(aoi_id,),
        )
    finally:
        con.close()
    log.info("AOI %s: %d licence states checked, %d changed", aoi_id, len(current), len(new))
    history = history[history["site_id"].isin(set(current))].reset_index(drop=True)
    history["allows_extraction"] = history["allows_extraction"].astype(bool)
    return history[HISTORY_COLUMNS]
