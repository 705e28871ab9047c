"""The run ledger: what every run did, per AOI, in SQLite (``Settings.state_path``).

Three tables of this module live in the shared state file (other modules add their own
tables to the same file; WAL mode lets a reader such as ``asm-monitor runs list`` look
while a run writes):

``runs``
    One row per invocation of ``asm-monitor run``: ``run_id`` (time-based), status
    (running, ok, partial, failed, interrupted), code version, rulebook version, model
    hash, scheduler, peak memory of the run's process tree (MiB), duration (s), exit code.
``run_aois``
    One row per AOI of a run: status (running, ok, no_data, failed, up_to_date, skipped,
    interrupted), the error message, the deterministic ``aoi_run_id`` stamped on flags,
    period, timings (s), peak memory (MiB), counts and outputs.
``run_inputs``
    The inputs each AOI run processed: input id (path relative to the data folder) and
    content fingerprint. Nightly incremental runs skip inputs already here with the same
    fingerprint from a successful AOI run.

Only the process holding the run lock (:mod:`pipeline.state.lock`) writes; a row left
``running`` by a killed process is marked ``interrupted`` by the next run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.version import __version__

#: AOI statuses that mean "these inputs were processed" (no_data: read, nothing usable).
DONE_STATUSES = ("ok", "no_data")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    exit_code INTEGER,
    command TEXT,
    host TEXT,
    pid INTEGER,
    period TEXT,
    scheduler TEXT,
    code_version TEXT,
    rulebook_version TEXT,
    model_hash TEXT,
    peak_rss_mib REAL,
    duration_s REAL,
    n_aois INTEGER
);
CREATE TABLE IF NOT EXISTS run_aois (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    aoi_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    aoi_run_id TEXT,
    period TEXT,
    status TEXT NOT NULL,
    error TEXT,
    started TEXT,
    finished TEXT,
    duration_s REAL,
    peak_rss_mib REAL,
    timings_json TEXT,
    counts_json TEXT,
    outputs_json TEXT,
    PRIMARY KEY (run_id, aoi_id)
);
CREATE INDEX IF NOT EXISTS run_aois_by_aoi ON run_aois(aoi_id, status, finished);
CREATE TABLE IF NOT EXISTS run_inputs (
    run_id TEXT NOT NULL,
    aoi_id TEXT NOT NULL,
    input_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (run_id, aoi_id, input_id)
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@functools.cache
def code_version() -> str:
    """Package version plus the git commit when running from a checkout (``0.1.0+g1a2b3c4``,
    ``-dirty`` when the tree has uncommitted changes)."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return __version__
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}{'-dirty' if dirty else ''}"


def model_hash(detect_params: object) -> str | None:
    """SHA-256 (first 16 hex) of every model file the detect settings point at, or None.

    Every path-valued field of the detect settings whose name contains ``model`` (e.g.
    ``model_path``) counts, so a model added later is recorded without changing the ledger.
    """
    h = hashlib.sha256()
    found = False
    for name in sorted(getattr(detect_params, "__dataclass_fields__", {})):
        value = getattr(detect_params, name)
        if "model" not in name or not isinstance(value, str | Path) or not str(value):
            continue
        path = Path(value)
        if path.is_file():
            h.update(name.encode())
            h.update(path.read_bytes())
            found = True
    return h.hexdigest()[:16] if found else None


@dataclass(frozen=True)
class AoiRunRecord:
    """One AOI of one run, as the ledger holds it."""

    run_id: str
    aoi_id: str
    aoi_run_id: str | None
    period: str | None
    status: str
    error: str | None
    started: str | None
    finished: str | None
    duration_s: float | None
    peak_rss_mib: float | None
    timings: dict[str, float]
    counts: dict[str, Any]
    outputs: dict[str, str]
    inputs: dict[str, str]


class RunLedger:
    """The run ledger in a SQLite file (created on first use, WAL mode)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"Cannot open the run ledger {self.path}: {exc}. Make the folder writable, or point "
                "state_db (ASM_STATE_DB) at a writable file on local disk (not NFS: SQLite locking)."
            ) from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0)) as conn:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:  # one transaction, committed on success
                yield conn

    # ---- writing (only under the run lock) -------------------------------------------
    def recover_interrupted(self) -> list[str]:
        """Mark runs and AOIs left ``running`` by a killed process as ``interrupted``."""
        with self._connect() as conn:
            ids = [r["run_id"] for r in conn.execute("SELECT run_id FROM runs WHERE status = 'running'")]
            conn.execute("UPDATE runs SET status = 'interrupted', exit_code = 137 WHERE status = 'running'")
            conn.execute(
                "UPDATE run_aois SET status = 'interrupted', "
                "error = 'process ended before this AOI finished' WHERE status = 'running'"
            )
        return ids

    def start_run(self, run_id: str, **fields: Any) -> None:
        """Insert the run's row with status ``running``."""
        cols = {"run_id": run_id, "started": _now(), "status": "running", **fields}
        with self._connect() as conn:
            conn.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                list(cols.values()),
            )

    def finish_run(self, run_id: str, **fields: Any) -> None:
        """Set the run's final status, exit code, duration and peak memory."""
        cols = {"finished": _now(), **fields}
        with self._connect() as conn:
            conn.execute(
                f"UPDATE runs SET {', '.join(f'{k} = ?' for k in cols)} WHERE run_id = ?",
                [*cols.values(), run_id],
            )

    def start_aoi(self, run_id: str, aoi_id: str, *, seq: int, period: str | None) -> None:
        """Insert the AOI's row with status ``running`` (a crash leaves it so)."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO run_aois (run_id, aoi_id, seq, period, status, started) "
                "VALUES (?, ?, ?, ?, 'running', ?)",
                (run_id, aoi_id, seq, period, _now()),
            )

    def finish_aoi(
        self,
        run_id: str,
        aoi_id: str,
        *,
        status: str,
        aoi_run_id: str | None = None,
        period: str | None = None,
        error: str | None = None,
        duration_s: float | None = None,
        peak_rss_mib: float | None = None,
        timings: Mapping[str, float] | None = None,
        counts: Mapping[str, Any] | None = None,
        outputs: Mapping[str, str] | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> None:
        """Record how the AOI ended and, when it was processed, the inputs it processed."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE run_aois SET status = ?, aoi_run_id = ?, period = COALESCE(?, period), "
                "error = ?, finished = ?, duration_s = ?, peak_rss_mib = ?, timings_json = ?, "
                "counts_json = ?, outputs_json = ? WHERE run_id = ? AND aoi_id = ?",
                (
                    status,
                    aoi_run_id,
                    period,
                    error,
                    _now(),
                    duration_s,
                    peak_rss_mib,
                    json.dumps(dict(timings or {}), sort_keys=True),
                    json.dumps(dict(counts or {}), sort_keys=True, default=str),
                    json.dumps(dict(outputs or {}), sort_keys=True),
                    run_id,
                    aoi_id,
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO run_inputs (run_id, aoi_id, input_id, fingerprint) "
                "VALUES (?, ?, ?, ?)",
                [(run_id, aoi_id, k, v) for k, v in sorted((inputs or {}).items())],
            )

    # ---- reading ----------------------------------------------------------------------
    def last_success(self, aoi_id: str) -> AoiRunRecord | None:
        """The AOI's most recent run that processed its inputs (status ok or no_data)."""
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT * FROM run_aois WHERE aoi_id = ? AND status IN {DONE_STATUSES} "
                "ORDER BY finished DESC, rowid DESC LIMIT 1",
                (aoi_id,),
            ).fetchone()
            return None if row is None else self._record(conn, row)

    def processed_inputs(self, aoi_id: str) -> dict[str, set[str]]:
        """Input id -> fingerprints already processed by a successful run of the AOI."""
        out: dict[str, set[str]] = {}
        with self._connect() as conn:
            for row in conn.execute(
                "SELECT i.input_id, i.fingerprint FROM run_inputs i JOIN run_aois a "
                "ON a.run_id = i.run_id AND a.aoi_id = i.aoi_id "
                f"WHERE i.aoi_id = ? AND a.status IN {DONE_STATUSES}",
                (aoi_id,),
            ):
                out.setdefault(row["input_id"], set()).add(row["fingerprint"])
        return out

    def completed(self, aoi_id: str, aoi_run_id: str) -> AoiRunRecord | None:
        """A successful earlier run of exactly this AOI run id (same inputs, settings, code)."""
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT * FROM run_aois WHERE aoi_id = ? AND aoi_run_id = ? AND status IN {DONE_STATUSES} "
                "ORDER BY finished DESC LIMIT 1",
                (aoi_id, aoi_run_id),
            ).fetchone()
            return None if row is None else self._record(conn, row)

    def list_runs(self, *, limit: int = 20, aoi_id: str | None = None) -> list[dict[str, Any]]:
        """The most recent runs, newest first, with per-status AOI counts."""
        where, args = ("", [])
        if aoi_id:
            where, args = ("WHERE run_id IN (SELECT run_id FROM run_aois WHERE aoi_id = ?)", [aoi_id])
        with self._connect() as conn:
            runs = [
                dict(r)
                for r in conn.execute(
                    f"SELECT * FROM runs {where} ORDER BY started DESC, rowid DESC LIMIT ?", [*args, limit]
                )
            ]
            for run in runs:
                run["aoi_status"] = {
                    r["status"]: r["n"]
                    for r in conn.execute(
                        "SELECT status, COUNT(*) AS n FROM run_aois WHERE run_id = ? GROUP BY status",
                        (run["run_id"],),
                    )
                }
        return runs

    def get_run(self, run_id: str) -> tuple[dict[str, Any], list[AoiRunRecord]] | None:
        """One run and its AOIs; ``run_id`` may be a unique prefix or an AOI run id."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? ORDER BY run_id = ? DESC",
                (run_id, run_id.replace("%", "") + "%", run_id),
            ).fetchall()
            if not rows:
                rows = conn.execute(
                    "SELECT r.* FROM runs r JOIN run_aois a ON a.run_id = r.run_id "
                    "WHERE a.aoi_run_id = ? ORDER BY r.started DESC",
                    (run_id,),
                ).fetchall()
            if not rows:
                return None
            if len(rows) > 1 and rows[0]["run_id"] != run_id:
                raise ConfigError(
                    f"Run id prefix {run_id!r} is ambiguous: "
                    f"{', '.join(r['run_id'] for r in rows[:5])}. Give more characters."
                )
            run = dict(rows[0])
            aois = [
                self._record(conn, r)
                for r in conn.execute(
                    "SELECT * FROM run_aois WHERE run_id = ? ORDER BY seq", (run["run_id"],)
                )
            ]
        return run, aois

    @staticmethod
    def _record(conn: sqlite3.Connection, row: sqlite3.Row) -> AoiRunRecord:
        inputs = {
            r["input_id"]: r["fingerprint"]
            for r in conn.execute(
                "SELECT input_id, fingerprint FROM run_inputs WHERE run_id = ? AND aoi_id = ? "
                "ORDER BY input_id",
                (row["run_id"], row["aoi_id"]),
            )
        }
        return AoiRunRecord(
            run_id=row["run_id"],
            aoi_id=row["aoi_id"],
            aoi_run_id=row["aoi_run_id"],
            period=row["period"],
            status=row["status"],
            error=row["error"],
            started=row["started"],
            finished=row["finished"],
            duration_s=row["duration_s"],
            peak_rss_mib=row["peak_rss_mib"],
            timings=json.loads(row["timings_json"] or "{}"),
            counts=json.loads(row["counts_json"] or "{}"),
            outputs=json.loads(row["outputs_json"] or "{}"),
            inputs=inputs,
        )
