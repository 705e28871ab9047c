"""Refuse a state database that is damaged, replaced or rewritten, before anything is sent.

The state file holds what must survive between nights: flag states, the audit ledger, the
run ledger and which alerts were delivered. A truncated file silently opened as a new one
re-sends every alert and restarts the ledger "intact"; garbage in a page is found only when
a query happens to read it. So a run first checks the whole file (``PRAGMA
integrity_check``) and that its ledger verifies (hash chain, the heads anchored beside it,
the suppressions mirror), and stops with :class:`StateDamagedError` (exit code 2) naming
the file and how to restore it. The check only reads.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import shapely

from pipeline.core.errors import LedgerError
from pipeline.state.audit_ledger import LedgerProblem, head, read_ledger, verify_chain
from pipeline.state.ledger_anchor import check_heads, heads_path, read_heads
from pipeline.state.suppressions import mirror_problems

SQLITE_MAGIC = b"SQLite format 3\x00"


class StateDamagedError(LedgerError):
    """The state database is damaged, missing its ledger, or its ledger does not verify."""

    exit_code = 2


def _restore(path: Path) -> str:
    heads = heads_path(path).name
    return (
        f"Nothing was run, sent or written. Restore {path} from your latest backup (e.g. `cp BACKUP "
        f"{path}`; keep {heads} as it is) and check it with `asm-monitor ledger verify --state-db "
        f"{path}` before running again. If the state is lost for good, move {path.name} and {heads} "
        "aside together to start a new one (every flag and alert then counts as new)."
    )


def check_file(path: Path) -> None:
    """Refuse a state file that is not a SQLite database, or that is missing or empty while
    its heads file records a ledger. Reads only the first bytes."""
    lines, _ = read_heads(path)
    size = path.stat().st_size if path.exists() else None
    if not size:
        recorded = max((ln.seq for ln in lines), default=0)
        if recorded > 0:
            what = "missing" if size is None else "empty (0 bytes)"
            raise StateDamagedError(
                f"The state database {path} is {what}, but {heads_path(path).name} records an "
                f"audit ledger of {recorded} rows (last written {lines[-1].at}): the file was "
                f"truncated or deleted. {_restore(path)}"
            )
        return
    with open(path, "rb") as fh:
        header = fh.read(len(SQLITE_MAGIC))
    if header != SQLITE_MAGIC:
        raise StateDamagedError(
            f"The state database {path} is not a SQLite database (it starts with {header!r}): it "
            f"was overwritten or damaged. {_restore(path)}"
        )


def integrity_problems(db: sqlite3.Connection) -> list[str]:
    """What ``PRAGMA integrity_check`` finds, then what it cannot see: garbage inside a row
    (text that is not UTF-8, flag states that do not parse). Empty when the file is whole."""
    found = [str(r[0]) for r in db.execute("PRAGMA integrity_check(20)")]
    if found != ["ok"]:
        return found
    tables = [str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        try:
            for _ in db.execute(f'SELECT * FROM "{table}"'):
                pass
        except sqlite3.OperationalError as exc:  # e.g. "Could not decode to UTF-8 column ..."
            return [f"table {table}: {str(exc)[:120]}"]
    return _flag_state_problems(db) if "comply_flag_state" in tables else []


def _flag_state_problems(db: sqlite3.Connection) -> list[str]:
    for aoi_id, period, flag_id, text, wkb in db.execute(
        "SELECT aoi_id, period, flag_id, state, footprint FROM comply_flag_state"
    ):
        try:
            json.loads(text)["flag_id"]
            if wkb is not None:
                shapely.from_wkb(wkb)
        except (ValueError, KeyError, TypeError, shapely.errors.GEOSException) as exc:
            return [f"the state of flag {flag_id} ({aoi_id}, {period}) does not parse: {exc}"]
    return []


def verify_all(db: sqlite3.Connection, path: Path) -> tuple[int, str, list[LedgerProblem]]:
    """The ledger in ``db`` (the state file ``path``) walked: (rows, head hash, problems) of the
    hash chain, the heads anchored beside it and the suppressions mirror."""
    n, top, problems = verify_chain(db)
    rows = read_ledger(db)
    problems += check_heads(path, rows, head(db))
    problems += mirror_problems(db, rows)
    return n, top, problems


def damaged(path: Path, detail: str) -> StateDamagedError:
    """The error for a state file SQLite cannot read whole."""
    return StateDamagedError(f"The state database {path} is damaged ({detail}). {_restore(path)}")


def check_state(path: Path) -> None:
    """Before a run: refuse ``path`` unless it is a whole SQLite file whose ledger verifies
    (or no state yet). Raises :class:`StateDamagedError` (exit code 2)."""
    check_file(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            damage = integrity_problems(con)
            if damage:
                raise damaged(path, f"integrity_check: {'; '.join(damage[:3])}")
            _, _, problems = verify_all(con, path)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise damaged(path, str(exc)) from exc
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StateDamagedError(
            f"The audit ledger in {path} does not verify: {problems[0].message}{more}. Nothing was "
            f"run, sent or written. `asm-monitor ledger verify --state-db {path}` names every "
            f"broken row; restore {path.name} from a backup taken before the change (keep "
            f"{heads_path(path).name} as it is), then run again."
        )
