"""The audit ledger's heads, anchored outside the database: ``<state file>.ledger-heads``.

The hash chain inside the SQLite file catches an edited or deleted row, but whoever can
write the file can also re-chain it after an edit, cut it and fix the head, or wipe it.
So every write to the ledger also appends one line to this file, *before* it commits, while
holding SQLite's write lock (so lines are in commit order): the head the write started from
(``base_seq``, ``base_hash``) and the head it leaves (``seq``, ``row_hash``), with the time,
run and AOI. A run that changes nothing still adds a line (one per AOI run).

:func:`check_heads` walks the lines: a line whose transaction committed is followed by a
line that starts from its head; a transaction cut short before its commit (``kill -9``)
is followed by one that starts from the same base. Every committed head must be a row of
the ledger with that hash, and the ledger must end at the last one. The file is only ever
appended to: make it append-only (``chattr +a``) or copy it off the machine, and each
``run.json`` repeats the head of its run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.state.audit_ledger import GENESIS, LedgerProblem

SUFFIX = ".ledger-heads"


def heads_path(state_path: Path) -> Path:
    """The heads file beside the state database ``state_path``."""
    return state_path.with_name(state_path.name + SUFFIX)


@dataclass(frozen=True)
class HeadLine:
    """One line of the heads file: a write to the ledger, from one head to the next."""

    line: int
    """1-based line number in the file."""
    base_seq: int
    base_hash: str
    seq: int
    row_hash: str
    at: str
    run_id: str | None = None
    aoi_id: str | None = None

    @property
    def base(self) -> tuple[int, str]:
        return self.base_seq, self.base_hash

    @property
    def top(self) -> tuple[int, str]:
        return self.seq, self.row_hash


def append_head(
    state_path: Path,
    *,
    base: tuple[int, str],
    top: tuple[int, str],
    run_id: str | None = None,
    aoi_id: str | None = None,
) -> None:
    """Append one line (and fsync it) to the heads file of ``state_path``."""
    doc = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_seq": base[0],
        "base_hash": base[1],
        "seq": top[0],
        "row_hash": top[1],
        "run_id": run_id,
        "aoi_id": aoi_id,
    }
    blob = (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(heads_path(state_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse(number: int, text: str) -> HeadLine:
    doc: dict[str, Any] = json.loads(text)
    return HeadLine(
        line=number,
        base_seq=int(doc["base_seq"]),
        base_hash=str(doc["base_hash"]),
        seq=int(doc["seq"]),
        row_hash=str(doc["row_hash"]),
        at=str(doc.get("at", "?")),
        run_id=doc.get("run_id"),
        aoi_id=doc.get("aoi_id"),
    )


def read_heads(state_path: Path) -> tuple[list[HeadLine], list[LedgerProblem]]:
    """The lines of the heads file (none when it does not exist) and the lines that are not
    head records. A last line cut short (no newline: a write interrupted by a crash) is
    ignored."""
    path = heads_path(state_path)
    if not path.is_file():
        return [], []
    raw = path.read_bytes().decode("utf-8", errors="replace")
    texts = raw.split("\n")
    texts = texts[:-1]  # after the last newline: empty, or a torn write
    lines, problems = [], []
    for number, text in enumerate(texts, start=1):
        try:
            lines.append(_parse(number, text))
        except (ValueError, KeyError, TypeError):
            problems.append(
                LedgerProblem(0, f"{path.name} line {number} is not a head record: the file was edited")
            )
    return lines, problems


def last_head(state_path: Path) -> HeadLine | None:
    """The newest line of the heads file, or None."""
    lines, _ = read_heads(state_path)
    return lines[-1] if lines else None


def _committed(
    lines: Sequence[HeadLine], db_head: tuple[int, str], name: str
) -> tuple[list[HeadLine], list[LedgerProblem]]:
    """The lines whose write committed, and the lines that follow no line before them."""
    kept: list[HeadLine] = []
    problems: list[LedgerProblem] = []
    for i, ln in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        if nxt is None:
            # the newest write: cut short before its commit when the ledger is still at its base
            committed = ln.base == ln.top or db_head != ln.base
        elif nxt.base == ln.top:
            committed = True
        elif nxt.base == ln.base:
            committed = False  # the next write started from the same head: this one never committed
        else:
            committed = True
            problems.append(
                LedgerProblem(
                    nxt.base_seq,
                    f"{name} line {nxt.line} does not start from the head of line {ln.line}: "
                    "the heads file was edited",
                )
            )
        if committed:
            kept.append(ln)
    return kept, problems


def check_heads(
    state_path: Path, rows: Sequence[dict[str, Any]], db_head: tuple[int, str]
) -> list[LedgerProblem]:
    """Problems of the ledger ``rows`` (ending at ``db_head``) against the anchored heads."""
    name = heads_path(state_path).name
    lines, problems = read_heads(state_path)
    committed, broken = _committed(lines, db_head, name)
    problems += broken
    hashes = {int(r["seq"]): str(r["row_hash"]) for r in rows}
    reported: set[int] = set()
    for ln in committed:
        for seq, want in (ln.base, ln.top):
            if seq in reported:
                continue
            got = GENESIS if seq == 0 else hashes.get(seq)
            where = f"anchored in {name} line {ln.line} ({ln.at}, run {ln.run_id or '-'})"
            if got is None:
                message = f"row {seq}, {where}, is missing: the ledger was truncated or wiped"
            elif got != want:
                message = f"row {seq} does not match the head {where}: the ledger was rewritten"
            else:
                continue
            reported.add(seq)
            problems.append(LedgerProblem(seq, message))
    if committed and db_head[0] > committed[-1].seq:
        last = committed[-1]
        problems.append(
            LedgerProblem(
                last.seq + 1,
                f"rows {last.seq + 1}..{db_head[0]} come after the last head anchored in {name} "
                f"(line {last.line}, {last.at}): they were not written by asm-monitor",
            )
        )
    return problems
