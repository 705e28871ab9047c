"""The SQLite store of flag states and analyst suppressions, which also appends to the ledger.

``comply_flag_state``
    The state of every flag of an AOI after each lifecycle step (one row per AOI, step,
    flag). A step is placed by its latest evidence date (:mod:`pipeline.state.flag_steps`),
    never by its name; a run reads the states of the latest step *before* its own evidence,
    so running the same evidence again replaces its rows with the same values: the lifecycle
    is idempotent, and incremental nights and ``--full`` agree.
``alert_outbox``
    The alerts the flag states create, queued in the same transaction
    (:mod:`pipeline.state.alert_outbox`).
``comply_suppressions``
    A readable mirror of the analyst suppressions; the effective ones are replayed from the
    ledger's ``suppress`` / ``unsuppress`` / ``lift`` events (:mod:`pipeline.state.suppressions`).

Every write appends its ledger rows (:mod:`pipeline.state.audit_ledger`) in the same
transaction, so a state change and its audit record land together or not at all, and the
head it leaves is anchored in the heads file beside the database
(:mod:`pipeline.state.ledger_anchor`) before it commits.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import shapely

from pipeline.comply.lifecycle import Change, FlagState, Suppression
from pipeline.core.errors import LedgerError
from pipeline.state.alert_outbox import OUTBOX_SCHEMA, insert_alerts
from pipeline.state.audit_ledger import (
    LEDGER_SCHEMA,
    LedgerEntry,
    LedgerProblem,
    append_entries,
    ensure_data_column,
    head,
    ledger_columns,
    read_ledger,
)
from pipeline.state.flag_steps import StepKey, place_open_ended_steps
from pipeline.state.integrity import check_file, damaged, integrity_problems, verify_all
from pipeline.state.ledger_anchor import append_head
from pipeline.state.suppressions import ledger_suppressions, suppression_data

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


class StateStore:
    """The comply state and audit ledger in one SQLite file (WAL mode, safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        check_file(self.path)  # never open a wiped or foreign file as a new, empty state
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.executescript(_SCHEMA + LEDGER_SCHEMA + OUTBOX_SCHEMA)
            self._upgrade()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise damaged(self.path, str(exc)) from exc

    def _upgrade(self) -> None:
        """Bring a state file written by an earlier version up to date: the ledger's ``data``
        column, and runs over everything placed at their evidence dates."""
        old_steps = self._conn.execute(
            "SELECT 1 FROM comply_flag_state WHERE period_end = '9999-12-31' LIMIT 1"
        ).fetchone()
        if "data" in ledger_columns(self._conn) and old_steps is None:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            ensure_data_column(self._conn)
            moved = place_open_ended_steps(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        if moved:
            log.info("%s: %d runs over everything placed at their evidence dates", self.path, moved)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self, *, run_id: str | None = None, aoi_id: str | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction; the ledger head it leaves is anchored before it commits."""
        # IMMEDIATE: take the write lock first, so two processes never chain onto the same head
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            base = head(self._conn)
            yield self._conn
            top = head(self._conn)
            append_head(self.path, base=base, top=top, run_id=run_id, aoi_id=aoi_id)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        if top != base:  # a line that starts from this head: the write is known to have committed
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                now = head(self._conn)
                append_head(self.path, base=now, top=now, run_id=run_id, aoi_id=aoi_id)
            except OSError as exc:  # the write is anchored already; only the confirmation is missing
                log.warning("could not confirm the ledger head in the heads file: %s", exc)
            finally:
                self._conn.execute("COMMIT")

    # ---- flag states -------------------------------------------------------------------

    def _states(self, where: str, args: Sequence[Any]) -> dict[str, FlagState]:
        rows = self._conn.execute(f"SELECT state, footprint FROM comply_flag_state WHERE {where}", args)
        out = {}
        for text, wkb in rows:
            st = FlagState.from_json(text, footprint=shapely.from_wkb(wkb) if wkb else None)
            out[st.flag_id] = st
        return out

    def previous_states(self, aoi_id: str, step: StepKey) -> dict[str, FlagState]:
        """States after the latest step of ``aoi_id`` whose evidence ends before ``step``'s
        (an earlier run of the same period, with less evidence, is not "before" it); empty
        when there is none."""
        end = step.end.isoformat()
        row = self._conn.execute(
            "SELECT MAX(period_end) FROM comply_flag_state WHERE aoi_id = ? AND period_end < ? "
            "AND period != ?",
            (aoi_id, end, step.label),
        ).fetchone()
        later = self._conn.execute(
            "SELECT DISTINCT period FROM comply_flag_state WHERE aoi_id = ? AND period_end > ? "
            "AND period != ?",
            (aoi_id, end, step.label),
        ).fetchall()
        if later:
            log.warning(
                "AOI %s: period %s (evidence to %s) is re-run after later periods (%s) were run; "
                "run those again to carry this period's changes forward",
                aoi_id,
                step.label,
                end,
                ", ".join(sorted(r[0] for r in later)),
            )
        if row is None or row[0] is None:
            return {}
        return self._states("aoi_id = ? AND period_end = ?", (aoi_id, row[0]))

    def period_states(self, aoi_id: str, step: StepKey) -> dict[str, FlagState]:
        """States stored for this step by an earlier run of it: the same evidence date, or
        the same period run again."""
        args = (aoi_id, step.end.isoformat(), step.label)
        return self._states("aoi_id = ? AND (period_end = ? OR period = ?)", args)

    def save_period(
        self,
        aoi_id: str,
        step: StepKey,
        *,
        run_id: str,
        states: dict[str, FlagState],
        changes: Sequence[Change],
        lifted: Sequence[str] = (),
        alerts: Sequence[Mapping[str, Any]] = (),
    ) -> int:
        """Replace this step's states, append the status changes that are not already in
        the ledger for it (a rerun appends nothing) and queue the ``alerts`` these states
        create, all in one transaction (:mod:`pipeline.state.alert_outbox`). Returns the
        ledger rows appended. The ledger head is anchored even when nothing changed: one
        line per AOI run."""
        label, start, end = step.label, step.start.isoformat(), step.end.isoformat()
        stored = self.period_states(aoi_id, step)
        entries = [
            LedgerEntry(aoi_id, c.flag_id, "status", c.old_status, c.new_status, c.detail, label, run_id)
            for c in changes
            if c.flag_id not in stored or stored[c.flag_id].status != c.new_status
        ]
        now = _now()
        with self._write(run_id=run_id, aoi_id=aoi_id) as db:
            db.execute(
                "DELETE FROM comply_flag_state WHERE aoi_id = ? AND (period_end = ? OR period = ?)",
                (aoi_id, end, label),
            )
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
            insert_alerts(db, alerts, run_id=run_id, now=now)
        return len(entries)

    def latest_states(self, aoi_id: str | None = None) -> dict[str, FlagState]:
        """Each flag's state after the latest step (by evidence date) of its AOI."""
        where = (
            "(aoi_id, period_end) IN (SELECT aoi_id, MAX(period_end) FROM comply_flag_state GROUP BY aoi_id)"
        )
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
                        data=suppression_data(sup),
                    )
                ],
                now=sup.created_at,
            )
        return sup

    def unsuppress(self, flag_id: str, *, analyst: str) -> None:
        """Withdraw an active suppression."""
        rows = self.ledger_rows()
        if flag_id not in ledger_suppressions(rows):
            raise LedgerError(f"Flag {flag_id!r} is not suppressed. See `asm-monitor flags list`.")
        aoi_id = next(
            r["aoi_id"] for r in reversed(rows) if r["flag_id"] == flag_id and r["event"] == "suppress"
        )
        now = _now()
        with self._write() as db:
            db.execute(
                "UPDATE comply_suppressions SET active = 0, lifted_at = ? WHERE flag_id = ?", (now, flag_id)
            )
            append_entries(
                db, [LedgerEntry(aoi_id, flag_id, "unsuppress", "suppressed", None, f"by {analyst}")], now=now
            )

    def suppressions(self, aoi_id: str) -> dict[str, Suppression]:
        """Active suppressions of an AOI by flag id, replayed from the ledger's events (never
        from the ``comply_suppressions`` mirror, where a row could be slipped in)."""
        return ledger_suppressions(self.ledger_rows(), aoi_id=aoi_id)

    # ---- ledger ------------------------------------------------------------------------

    def ledger_rows(self) -> list[dict[str, Any]]:
        """Every ledger row, in order."""
        return read_ledger(self._conn)

    def verify_ledger(self) -> tuple[int, str, list[LedgerProblem]]:
        """Walk the chain: (rows checked, head hash, problems). No problems = intact.

        Checks the hash chain, the heads anchored in the heads file beside the database, and
        the suppressions mirror. Raises :class:`~pipeline.state.integrity.StateDamagedError`
        (exit code 2) when the file itself is damaged (``PRAGMA integrity_check``)."""
        try:
            damage = integrity_problems(self._conn)
            if damage:
                raise damaged(self.path, f"integrity_check: {'; '.join(damage[:3])}")
            return verify_all(self._conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise damaged(self.path, str(exc)) from exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
