"""Issue 15, cases 8 and 9: the run lock and the state database are what make a night safe
to run; neither may be silently replaced.

Case 8: deleting the lock file let a second run take a fresh lock while the first held the
deleted one. Case 9: a truncated state database was treated as new (every alert re-sent, the
audit ledger restarted "intact"); garbage mid-file gave exit 0 and `ledger verify` intact;
other damage crashed `ledger verify` with a traceback. A damaged state now stops the run
before anything is sent or written (exit 2, naming the file and how to restore it), and
`ledger verify` reports the damage (exit 2) instead of a traceback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ops.opshelp import run_cli

from pipeline.cli.main import main
from pipeline.core.errors import LockHeldError
from pipeline.state.lock import lock_path_for, run_lock

from .relhelp import WEBHOOK_SECRET, Receiver, reserve_site, write_detections

REPO = Path(__file__).resolve().parents[2]
AOI_ID = "rel-reserve"


# ---- case 8: the lock survives the deletion of its file -------------------------------


def _hold_lock(lock: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom pipeline.state.lock import run_lock\n"
        "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_deleted_lock_file_does_not_let_a_second_run_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = reserve_site(tmp_path)
    state = tmp_path / "out" / "asm-monitor.sqlite"
    lock = lock_path_for(state)
    holder = _hold_lock(lock)  # the first run, busy
    try:
        lock.unlink()  # an operator "cleaning a stale lock", or a tmp cleaner
        with pytest.raises(LockHeldError, match="holds the lock"):
            with run_lock(lock):
                pass
        assert main(argv) == 3  # a whole second run is refused, and writes nothing
        assert "holds the lock" in capsys.readouterr().err
        assert not (tmp_path / "out" / AOI_ID).exists() and not state.exists()
    finally:
        holder.kill()
        holder.wait()
    with run_lock(lock):  # released when the holder died
        pass
    assert main(argv) == 0


# ---- case 9: a damaged state database is refused -------------------------------------


@dataclass
class Night:
    root: Path
    argv: list[str]
    receiver: Receiver


@pytest.fixture(scope="module")
def night1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    """The reserve's 2024 run delivered its 2 alerts to an NGO webhook; 2025 data is on disk."""
    root = tmp_path_factory.mktemp("state")
    receiver = Receiver()
    cfg = root / "asm.toml"
    cfg.write_text(
        "[alerts]\nbackoff_s = 0.01\nbackoff_max_s = 0.02\nmax_attempts = 2\n"
        f'[[alerts.subscriptions]]\nname = "ngo"\nwebhook_url = "{receiver.url}"\nmin_severity = "info"\n'
    )
    argv = ["--config", str(cfg), *reserve_site(root)]
    write_detections(root / "data", "2025", [(0, 0, 500), (1000, -1500, 250)])
    old = os.environ.get("ASM_WEBHOOK_SECRET")
    os.environ["ASM_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    try:
        assert main(argv) == 0
        assert len(receiver.deliveries) == 2 == len(set(receiver.deliveries))
        yield Night(root, argv, receiver)
    finally:
        receiver.close()
        if old is None:
            os.environ.pop("ASM_WEBHOOK_SECRET", None)
        else:
            os.environ["ASM_WEBHOOK_SECRET"] = old


def _truncate(size: Callable[[int], int]) -> Callable[[Path], None]:
    def cut(db: Path) -> None:
        with open(db, "r+b") as fh:
            fh.truncate(size(db.stat().st_size))

    return cut


def _garbage_in(table: str) -> Callable[[Path], None]:
    """Random bytes over the rows of ``table``'s first page (a bad sector, a bad copy)."""

    def spoil(db: Path) -> None:
        with sqlite3.connect(db) as con:
            page = con.execute("SELECT pageno FROM dbstat WHERE name = ? LIMIT 1", (table,)).fetchone()[0]
            size = con.execute("PRAGMA page_size").fetchone()[0]
        with open(db, "r+b") as fh:
            fh.seek(page * size - 700)
            fh.write(os.urandom(600))

    return spoil


def _not_a_database(db: Path) -> None:
    with open(db, "r+b") as fh:
        fh.write(b"this is not sqlite".ljust(100, b"\0"))


DAMAGE = {
    "truncated to 0 bytes": _truncate(lambda n: 0),
    "truncated to half": _truncate(lambda n: n // 2),
    "garbage in the ledger": _garbage_in("audit_ledger"),
    "garbage in the flag states": _garbage_in("comply_flag_state"),
    "not a database": _not_a_database,
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file a user can reach under ``folder`` (symlinks followed), but the lock and
    SQLite's own -wal/-shm companions."""
    found = {}
    for top, _dirs, files in os.walk(folder, followlinks=True):
        for name in files:
            if not name.endswith((".lock", "-wal", "-shm")):
                path = Path(top) / name
                found[str(path.relative_to(folder))] = path.read_bytes()
    return found


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_state_database_stops_the_run_before_anything_is_sent(
    night1: Night, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(night1.root, root, symlinks=True)
    argv = [a.replace(str(night1.root), str(root)) for a in night1.argv]
    argv[argv.index("2024")] = "2025"
    db = root / "out" / "asm-monitor.sqlite"
    DAMAGE[damage](db)
    before = _snapshot(root)
    sent = len(night1.receiver.deliveries)
    capsys.readouterr()

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "restore" in err.lower(), err
    assert len(night1.receiver.deliveries) == sent  # nothing sent (was: every alert again)
    assert _snapshot(root) == before  # nothing written: no output, no state, no summary

    res = run_cli(["ledger", "verify", "--state-db", str(db)])
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert str(db) in res.stdout + res.stderr and "intact" not in res.stdout.replace("NOT intact", "")
