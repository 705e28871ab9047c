"""Analyst suppressions, derived from the audit ledger.

A suppression is a ``suppress`` event of the hash-chained ledger; ``unsuppress`` and ``lift``
(evidence grew past the footprint at suppression time) end it. The effective suppressions
are replayed from those events, so nothing but a ledgered, anchored event can silence a
flag. The ``comply_suppressions`` table is kept as a readable mirror of them; it is never
read to decide anything, and :func:`mirror_problems` reports where it disagrees with the
ledger (a row slipped into it is tampering).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.comply.flag_state import Suppression
from pipeline.state.audit_ledger import LedgerProblem, has_table

#: ``detail`` of a suppress event written before events carried ``data``
_LEGACY_DETAIL = re.compile(r"^by (?P<analyst>.*?): (?P<reason>.*) \(footprint (?P<ha>[0-9.,]+) ha\)$", re.S)


def suppression_data(sup: Suppression) -> str:
    """The ``data`` of a suppress event: reason, analyst and footprint, canonical JSON."""
    doc = {"reason": sup.reason, "analyst": sup.analyst, "area_ha": sup.area_ha}
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _suppression(row: Mapping[str, Any]) -> Suppression:
    if row.get("data"):
        doc = json.loads(row["data"])
        reason, analyst, area = str(doc["reason"]), str(doc["analyst"]), float(doc["area_ha"])
    elif m := _LEGACY_DETAIL.match(str(row["detail"])):
        reason, analyst, area = m["reason"], m["analyst"], float(m["ha"].replace(",", ""))
    else:
        reason, analyst, area = str(row["detail"]), "", 0.0
    return Suppression(str(row["flag_id"]), reason, analyst, area, str(row["recorded_at"]))


def ledger_suppressions(
    rows: Iterable[Mapping[str, Any]], *, aoi_id: str | None = None
) -> dict[str, Suppression]:
    """Active suppressions by flag id, replayed from ledger ``rows`` (in order)."""
    active: dict[str, Suppression] = {}
    for r in rows:
        if aoi_id is not None and r["aoi_id"] != aoi_id:
            continue
        if r["event"] == "suppress":
            active[str(r["flag_id"])] = _suppression(r)
        elif r["event"] in ("unsuppress", "lift"):
            active.pop(str(r["flag_id"]), None)
    return active


def mirror_problems(db: sqlite3.Connection, rows: Iterable[Mapping[str, Any]]) -> list[LedgerProblem]:
    """Where the ``comply_suppressions`` mirror disagrees with the ledger's suppressions."""
    if not has_table(db, "comply_suppressions"):
        return []
    table = {str(r[0]) for r in db.execute("SELECT flag_id FROM comply_suppressions WHERE active = 1")}
    ledger = set(ledger_suppressions(rows))
    problems = [
        LedgerProblem(
            0,
            f"comply_suppressions holds an active suppression of flag {fid} that no `suppress` "
            "event of the ledger records: a row was added to the table (it silences nothing: "
            "suppressions come from the ledger)",
        )
        for fid in sorted(table - ledger)
    ]
    problems += [
        LedgerProblem(
            0, f"flag {fid} is suppressed in the ledger but its comply_suppressions row was removed"
        )
        for fid in sorted(ledger - table)
    ]
    return problems
