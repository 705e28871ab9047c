"""Outputs over every AOI of an output folder (issue 19): the index entries, and one
``flags.parquet`` / ``impact.parquet`` / ``impact.csv`` for all AOIs together (for QGIS and
geopandas users), next to the per-AOI ones.

Each AOI's ``run.json`` carries its index entry (:func:`index_entry`); the night's last step
reads them back from ``OUT/<aoi>/run.json`` (:func:`read_entries`), so the index and the
combined tables always describe the runs that are in place, also for AOIs that were up to
date, and two worker processes never race on one shared file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from pipeline.core.atomic import write_text, write_with
from pipeline.core.records import WGS84, Aoi
from pipeline.report.csvsafe import csv_text
from pipeline.report.exports import write_geoparquet

log = logging.getLogger(__name__)

TOTAL = "total"
#: Period labels the index has a column for: a year or a quarter (``2024``, ``2025Q3``).
_DATED = re.compile(r"\d{4}(Q[1-4])?")
#: Simplification of an AOI's outline for the overview map (degrees, ~100 m at the equator).
SIMPLIFY_DEG = 0.001


def overview_outline(geometry: BaseGeometry) -> dict[str, Any]:
    """The AOI's outline for the overview map: simplified, coordinates to 5 decimals (1 m),
    as a GeoJSON geometry; computed with the AOI's run, so the night's index reads no file."""
    simple = shapely.transform(geometry.simplify(SIMPLIFY_DEG, preserve_topology=True), lambda c: c.round(5))
    doc: dict[str, Any] = json.loads(shapely.to_geojson(simple))
    return doc


def period_key(label: str) -> tuple[int, int]:
    """``2024`` < ``2025Q2`` < ``2025Q3``; unknown labels last."""
    try:
        year, _, quarter = label.partition("Q")
        return int(year), int(quarter or 0)
    except ValueError:
        return 9999, 0


def index_entry(
    aoi: Aoi,
    *,
    impact: pd.DataFrame | None,
    flags: int,
    flags_by_severity: Mapping[str, int],
    flagged_ha: float,
    scorecards: bool,
) -> dict[str, Any]:
    """What the index says of one AOI: who it is, mining by period (footprint counted once,
    and AMW's method), the latest period's new mining, and its flags."""
    by_period: dict[str, float] = {}
    amw: dict[str, float] = {}
    if impact is not None and len(impact):
        own = impact[(impact["zone_id"] == aoi.aoi_id) & (impact["period"] != TOTAL)]
        for row in own.itertuples():
            by_period[str(row.period)] = round(float(row.mined_ha), 2)  # type: ignore[arg-type]
            value = float(getattr(row, "amw_method_mined_ha", float("nan")))
            if pd.notna(value):
                amw[str(row.period)] = round(value, 2)
    total = round(sum(by_period.values()), 2)  # undated detections (period "") count here only
    by_period = {p: v for p, v in by_period.items() if _DATED.fullmatch(p)}
    amw = {p: v for p, v in amw.items() if _DATED.fullmatch(p)}
    ordered = sorted(by_period, key=period_key)
    return {
        "aoi_id": aoi.aoi_id,
        "name": aoi.name,
        "names": dict(aoi.names),
        "designation": aoi.designation,
        "country": aoi.country,
        "protection": aoi.protection,
        "collection": aoi.collection,
        "flags": int(flags),
        "flags_by_severity": {str(k): int(v) for k, v in flags_by_severity.items()},
        "flagged_ha": round(float(flagged_ha), 2),
        "scorecards": bool(scorecards),
        "mined_ha_by_period": {p: by_period[p] for p in ordered},
        "amw_method_ha_by_period": {p: amw[p] for p in sorted(amw, key=period_key)},
        "mined_ha": total,
        "outline": overview_outline(aoi.geometry),
    }


def read_entries(out_dir: Path) -> list[dict[str, Any]]:
    """The index entry of every AOI folder under ``out_dir`` (its ``run.json``), by id.
    A folder whose run.json is unreadable or predates the entry is left out with a warning."""
    entries = []
    for run_json in sorted(out_dir.glob("*/run.json")):
        if run_json.parent.name.startswith("."):
            continue
        try:
            doc = json.loads(run_json.read_text(encoding="utf-8"))
            entry = dict(doc["index"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("index: %s left out (%s); rerun that AOI to list it", run_json, exc)
            continue
        entry["period"] = doc.get("period")
        entry["finished"] = doc.get("finished")
        entries.append(entry)
    return entries


def dated_periods(entries: list[dict[str, Any]]) -> list[str]:
    """Every year / quarter any AOI has figures for, oldest first."""
    periods = {p for e in entries for p in e.get("mined_ha_by_period", {}) if _DATED.fullmatch(p)}
    return sorted(periods, key=period_key)


def latest_period(entries: list[dict[str, Any]]) -> str | None:
    """The latest period any AOI has figures for (e.g. ``2025Q3``)."""
    periods = dated_periods(entries)
    return periods[-1] if periods else None


def new_in(entry: dict[str, Any], latest: str | None) -> float:
    """The entry's new mining (ha, footprint) in the period ``latest``."""
    return float((entry.get("mined_ha_by_period") or {}).get(latest, 0.0)) if latest else 0.0


def write_basin_tables(out_dir: Path, entries: list[dict[str, Any]]) -> dict[str, Path]:
    """``OUT/flags.parquet`` and ``OUT/impact.parquet`` / ``impact.csv``: every AOI's flags
    and impact rows in one table each (an ``aoi_id`` column tells them apart)."""
    flag_frames, impact_frames = [], []
    for e in entries:
        folder = out_dir / e["aoi_id"]
        try:
            if (folder / "flags.parquet").is_file():
                # geometry as WKB, parsed once below: geopandas would parse each file's CRS
                flag_frames.append(pd.read_parquet(folder / "flags.parquet"))
            if (folder / "impact.csv").is_file():
                impact_frames.append(pd.read_csv(folder / "impact.csv", dtype={"period": str}))
        except (OSError, ValueError) as exc:  # one unreadable AOI output never hides the others
            log.warning("basin tables: %s left out (%s); rerun that AOI", folder, exc)
    written: dict[str, Path] = {}
    if flag_frames:
        table = pd.concat([f for f in flag_frames if len(f)] or flag_frames[:1], ignore_index=True)
        table = table.drop(columns=[c for c in ("bbox",) if c in table])  # rewritten on write
        flags = gpd.GeoDataFrame(
            table.drop(columns="geometry"), geometry=gpd.GeoSeries.from_wkb(table["geometry"], crs=WGS84)
        )
        written["flags.parquet"] = write_geoparquet(flags, out_dir / "flags.parquet")
    if impact_frames:
        impact = pd.concat([f for f in impact_frames if len(f)] or impact_frames[:1], ignore_index=True)
        written["impact.parquet"] = write_with(
            out_dir / "impact.parquet", lambda tmp: impact.to_parquet(tmp, index=False)
        )
        written["impact.csv"] = write_text(out_dir / "impact.csv", csv_text(impact))
    return written
