"""The SQLite store of flag states and analyst suppressions, which also appends to the ledger.

``comply_flag_state``
    The state of every flag of an AOI after each period (one row per AOI, period, flag).
    A run of period P reads the states after the latest period *before* P, so running P
    again replaces P's rows with the same values: the lifecycle is idempotent.
``comply_suppressions``
    Analyst suppressions (false positives) and when evidence lifted them.

Every write appends its ledger rows (:mod:`pipeline.state.audit_ledger`) in the same
transaction, so a state change and its audit record land together or not at all.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import shapely

from pipeline.comply.lifecycle import Change, FlagState, Suppression
from pipeline.core.errors import LedgerError
from pipeline.core.periods import Period
from pipeline.state.audit_ledger import (
    LEDGER_SCHEMA,
    LedgerEntry,
    LedgerProblem,
    append_entries,
    read_ledger,
    verify_chain,
)

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS comply_flag_state (
    aoi_id TEXT NOT NULL, period TEXT NOT NULL, period_start TEXT NOT NULL, period_end TEXT NOT NULL,
    flag_id TEXT NOT NULL, run_id TEXT NOT NULL, status TEXT NOT NULL, state TEXT NOT NULL,
    footprint BLOB, PRIMARY KEY (aoi_id, period, flag_id));
CREATE INDEX IF NOT EXISTS comply_flag_state_flag ON comply_flag_state (flag_id);
CREATE TABLE IF NOT EXISTS comply_suppressions (
    flag_id TEXT PRIMARY KEY, aoi_id TEXT NOT NULL, reason TEXT NOT NULL, analyst TEXT NOT NULL,
    area_ha REAL NOT NULL, created_at TEXT NOT NULL, active INTEGER NOT NULL,
    lifted_period TEXT, lifted_at TEXT);
"""


def period_key(period: Period | None) -> tuple[str, str, str]:
    """(label, start, end) of a period; a run over everything sorts after every period."""
    if period is None:
        return "all", "0001-01-01", "9999-12-31"
    return period.label, period.start.isoformat(), period.end.isoformat()


class StateStore:
    """The comply state and audit ledger in one SQLite file (WAL mode, safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA + LEDGER_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE: take the write lock first, so two processes never chain onto the same head
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ---- flag states -------------------------------------------------------------------

    def _states(self, where: str, args: Sequence[Any]) -> dict[str, FlagState]:
        rows = self._conn.execute(f"SELECT state, footprint FROM comply_flag_state WHERE {where}", args)
        out = {}
        for text, wkb in rows:
            st = FlagState.from_json(text, footprint=shapely.from_wkb(wkb) if wkb else None)
            out[st.flag_id] = st
        return out

    def previous_states(self, aoi_id: str, period: Period | None) -> dict[str, FlagState]:
        """States after the latest period of ``aoi_id`` that ends before ``period`` (by end,
        start, label); empty when there is none."""
        label, start, end = period_key(period)
        row = self._conn.execute(
            "SELECT period FROM comply_flag_state WHERE aoi_id = ? AND "
            "(period_end, period_start, period) < (?, ?, ?) "
            "ORDER BY period_end DESC, period_start DESC, period DESC LIMIT 1",
            (aoi_id, end, start, label),
        ).fetchone()
        later = self._conn.execute(
            "SELECT DISTINCT period FROM comply_flag_state WHERE aoi_id = ? AND "
            "(period_end, period_start, period) > (?, ?, ?)",
            (aoi_id, end, start, label),
        ).fetchall()
        if later:
            log.warning(
                "AOI %s: period %s is re-run after later periods (%s) were run; run those again "
                "to carry this period's changes forward",
                aoi_id,
                label,
                ", ".join(sorted(r[0] for r in later)),
            )
        return {} if row is None else self._states("aoi_id = ? AND period = ?", (aoi_id, row[0]))

    def period_states(self, aoi_id: str, period: Period | None) -> dict[str, FlagState]:
        """States stored for exactly this period (from an earlier run of it)."""
        return self._states("aoi_id = ? AND period = ?", (aoi_id, period_key(period)[0]))

    def save_period(
        self,
        aoi_id: str,
        period: Period | None,
        *,
        run_id: str,
        states: dict[str, FlagState],
        changes: Sequence[Change],
        lifted: Sequence[str] = (),
    ) -> int:
        """Replace this period's states and append the status changes that are not already in
        the ledger for it (a rerun appends nothing). Returns the ledger rows appended."""
        label, start, end = period_key(period)
        stored = self.period_states(aoi_id, period)
        entries = [
            LedgerEntry(aoi_id, c.flag_id, "status", c.old_status, c.new_status, c.detail, label, run_id)
            for c in changes
            if c.flag_id not in stored or stored[c.flag_id].status != c.new_status
        ]
        now = _now()
        with self._write() as db:
            db.execute("DELETE FROM comply_flag_state WHERE aoi_id = ? AND period = ?", (aoi_id, label))
            db.executemany(
                "INSERT INTO comply_flag_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        aoi_id,
                        label,
                        start,
                        end,
                        s.flag_id,
                        run_id,
                        s.status,
                        s.to_json(),
                        shapely.to_wkb(s.footprint) if s.footprint is not None else None,
                    )
                    for s in states.values()
                ],
            )
            for fid in lifted:
                db.execute(
                    "UPDATE comply_suppressions SET active = 0, lifted_period = ?, lifted_at = ? "
                    "WHERE flag_id = ? AND active = 1",
                    (label, now, fid),
                )
                entries.append(
                    LedgerEntry(
                        aoi_id, fid, "lift", "suppressed", "worsening", "evidence grew", label, run_id
                    )
                )
            append_entries(db, entries, now=now)
        return len(entries)

    def latest_states(self, aoi_id: str | None = None) -> dict[str, FlagState]:
        """Each flag's state after the latest period run for its AOI."""
        where = "(aoi_id, period_end, period_start, period) IN (SELECT aoi_id, period_end, period_start, "
        where += "period FROM comply_flag_state f2 WHERE f2.aoi_id = comply_flag_state.aoi_id "
        where += "ORDER BY period_end DESC, period_start DESC, period DESC LIMIT 1)"
        if aoi_id is not None:
            return self._states(where + " AND aoi_id = ?", (aoi_id,))
        return self._states(where, ())

    def flag_history(self, flag_id: str) -> list[tuple[str, str, float]]:
        """(period, status, cumulative ha) of a flag, from its latest state."""
        rows = self._states("flag_id = ?", (flag_id,))
        if not rows:
            return []
        return [tuple(h) for h in max(rows.values(), key=lambda s: len(s.history)).history]  # type: ignore[misc]

    # ---- suppressions ------------------------------------------------------------------

    def suppress(self, flag_id: str, *, reason: str, analyst: str) -> Suppression:
        """Mark a flag a false positive; raises LedgerError for an unknown flag or no reason."""
        if not reason.strip():
            raise LedgerError("A suppression needs a reason. Pass --reason 'why this is not mining'.")
        latest = {k: v for k, v in self.latest_states().items() if k == flag_id}
        if not latest:
            raise LedgerError(
                f"No flag {flag_id!r} in {self.path}. List flags with `asm-monitor flags list` "
                "and pass the state file the run used (--out or --state-db)."
            )
        st = latest[flag_id]
        sup = Suppression(flag_id, reason.strip(), analyst, st.area_ha, _now())
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO comply_suppressions VALUES (?, ?, ?, ?, ?, ?, 1, NULL, NULL)",
                (flag_id, st.aoi_id, sup.reason, analyst, sup.area_ha, sup.created_at),
            )
            append_entries(
                db,
                [
                    LedgerEntry(
                        st.aoi_id,
                        flag_id,
                        "suppress",
                        st.status,
                        "suppressed",
                        f"by {analyst}: {sup.reason} (footprint {sup.area_ha:.2f} ha)",
                    )
                ],
                now=sup.created_at,
            )
        return sup

    def unsuppress(self, flag_id: str, *, analyst: str) -> None:
        """Withdraw an active suppression."""
        row = self._conn.execute(
            "SELECT aoi_id FROM comply_suppressions WHERE flag_id = ? AND active = 1", (flag_id,)
        ).fetchone()
        if row is None:
            raise LedgerError(f"Flag {flag_id!r} is not suppressed. See `asm-monitor flags list`.")
        now = _now()
        with self._write() as db:
            db.execute(
                "UPDATE comply_suppressions SET active = 0, lifted_at = ? WHERE flag_id = ?", (now, flag_id)
            )
            append_entries(
                db, [LedgerEntry(row[0], flag_id, "unsuppress", "suppressed", None, f"by {analyst}")], now=now
            )

    def suppressions(self, aoi_id: str) -> dict[str, Suppression]:
        """Active suppressions of an AOI by flag id."""
        rows = self._conn.execute(
            "SELECT flag_id, reason, analyst, area_ha, created_at FROM comply_suppressions "
            "WHERE aoi_id = ? AND active = 1",
            (aoi_id,),
        )
        return {r[0]: Suppression(*r) for r in rows}

    # ---- ledger ------------------------------------------------------------------------

    def ledger_rows(self) -> list[dict[str, Any]]:
        """Every ledger row, in order."""
        return read_ledger(self._conn)

    def verify_ledger(self) -> tuple[int, str, list[LedgerProblem]]:
        """Walk the chain: (rows checked, head hash, problems). No problems = intact."""
        return verify_chain(self._conn)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
