"""Map a raw registry table to MineSite rows, and report every row it cannot use.

Mapping decisions (the column mapping itself is in ``pipeline/data/formats.toml``):

* SIGMINE ``PROCESSO`` is the title id. It repeats when one title has several polygons
  (the Amapá 2021 file: 89 rows share 38 ids, same holder, different parts). Parts of one
  title are merged into one MultiPolygon site and the merge is listed in the report. When
  parts disagree on ``FASE`` the part with the latest ``ULT_EVENTO`` date wins and the other
  parts are rejected as ``conflicting duplicate`` (never silently).
* ``FASE`` decides ``licence_status`` / ``licence_kind`` / ``allows_extraction`` through the
  ``phases`` table. An unknown phase is a rejected row, not a guess.
* SIGMINE has no validity dates; ``licence_valid_from/to`` stay empty and
  ``last_event_date`` is the date in ``ULT_EVENTO``.
* Native registries give ``licence_status`` directly; a site allows extraction when the
  status is ``active`` and its validity window (when given) has not ended.
* Point sites (CSV lon/lat with ``radius_m``) become circles of that radius, drawn in the
  site's UTM zone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from pipeline.core.records import WGS84

log = logging.getLogger(__name__)

LICENCE_STATUSES = ("active", "suspended", "expired", "pending", "none")
SITE_COLUMNS = [
    "site_id",
    "name",
    "operator",
    "licence_status",
    "licence_kind",
    "allows_extraction",
    "phase",
    "licence_valid_from",
    "licence_valid_to",
    "last_event_date",
    "last_event",
    "mineral",
    "registry",
    "radius_m",
    "source_rows",
]
_DATE_RE = re.compile(r"(\d{2})/(\d{2})/(\d{4})")


@dataclass(frozen=True)
class Rejection:
    """A registry row that did not become a site, and why."""

    row: int
    """1-based row number in the source file."""
    site_id: str | None
    reason: str


@dataclass
class RegistryReport:
    """What ``to_mine_sites`` did with every row."""

    rows_read: int = 0
    sites: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    merged: dict[str, list[int]] = field(default_factory=dict)
    """site_id -> rows merged into that one multi-part site."""

    def lines(self, *, show_merged: bool = False) -> list[str]:
        """Human-readable report, one line per fact (``show_merged``: one line per merged title)."""
        out = [
            f"rows read: {self.rows_read}",
            f"sites: {self.sites}",
            f"multi-part titles merged: {len(self.merged)} "
            f"({sum(len(v) for v in self.merged.values())} rows)",
            f"rows rejected: {len(self.rejected)}"
            + (" (row = feature number in the file from 1; CSV header not counted)" if self.rejected else ""),
        ]
        out += [f"  row {r.row} ({r.site_id}): {r.reason}" for r in self.rejected]
        if show_merged:
            out += [
                f"  merged {sid}: rows {', '.join(map(str, rows))}"
                for sid, rows in sorted(self.merged.items())
            ]
        return out


def _event_text(text: Any) -> str | None:
    """The registry's last-event text as written (``"508 - CONC LAV/DESPACHO PUBLICADO EM
    05/06/2017"``), or None."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    return " ".join(str(text).split()) or None


def _event_date(text: Any) -> pd.Timestamp | None:
    m = _DATE_RE.search(str(text)) if isinstance(text, str) else None
    if not m:
        return None
    try:
        return pd.Timestamp(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        return None


def _to_date(value: Any) -> pd.Timestamp | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(ts) else ts


def _circles(frame: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """Buffer point geometries by ``radius_m`` (m) in each point's own UTM zone.

    One UTM CRS for the whole registry would stretch circles far from its central meridian
    (a registry spanning several countries), so points are grouped by zone.
    """
    geoms = frame.geometry.copy()
    points = (frame.geometry.geom_type == "Point") & ~frame.geometry.is_empty
    if not points.any():
        return geoms
    sub = frame[points]
    radius = (
        pd.to_numeric(sub["radius_m"], errors="coerce") if "radius_m" in sub else pd.Series(0.0, sub.index)
    )
    radius = radius.fillna(0).clip(lower=1)
    lon, lat = sub.geometry.x, sub.geometry.y
    ok = lon.notna() & lat.notna()
    geoms[sub.index[~ok]] = None  # a point without coordinates is rejected as empty
    zone = ((lon[ok] + 180) // 6).clip(0, 59).astype(int) + 1
    epsg = np.where(lat[ok] >= 0, 32600, 32700) + zone
    for code in sorted(set(epsg)):
        idx = zone.index[epsg == code]
        circles = sub.loc[idx].to_crs(int(code)).buffer(radius[idx].to_numpy(), quad_segs=32)
        geoms[idx] = circles.to_crs(WGS84).to_numpy()
    return geoms


def to_mine_sites(
    raw: gpd.GeoDataFrame,
    *,
    spec: dict[str, Any],
    aois: gpd.GeoDataFrame | None = None,
) -> tuple[gpd.GeoDataFrame, RegistryReport]:
    """MineSite table (EPSG:4326, ``SITE_COLUMNS`` + geometry) and the report of every row.

    Parameters
    ----------
    raw
        As read by :func:`pipeline.ingest.vectors.read_registry` (with ``source_row``).
    spec
        The registry's table from formats.toml.
    aois
        When given, rows that intersect no AOI are rejected as ``outside every AOI``.
    """
    report = RegistryReport(rows_read=len(raw))
    rows: list[dict[str, Any]] = []
    geoms = _circles(raw)
    for i, rec in enumerate(raw.itertuples(index=False)):
        r = rec._asdict()
        row = int(r["source_row"])
        site_id = _site_id(r, spec=spec)
        site = (
            "missing site id"
            if site_id is None
            else _site_row(r, row=row, site_id=site_id, geom=geoms.iloc[i], spec=spec)
        )
        if isinstance(site, str):
            report.rejected.append(Rejection(row, site_id, site))
        else:
            rows.append(site)
    sites = _merge_parts(rows, report, merge=spec.get("duplicates", "reject") == "merge")
    frame = gpd.GeoDataFrame(sites, columns=[*SITE_COLUMNS, "geometry"], geometry="geometry", crs=WGS84)
    frame = _inside_aois(frame, aois=aois, report=report)
    frame["source_rows"] = frame["source_rows"].map(lambda rs: ",".join(map(str, rs)))
    report.rejected.sort(key=lambda r: r.row)
    report.sites = len(frame)
    return frame.reset_index(drop=True), report


def _site_id(r: dict[str, Any], *, spec: dict[str, Any]) -> str | None:
    """The row's title id, trimmed; None when blank (a blank cell is read as NaN)."""
    site_id = r.get(spec.get("site_id", "site_id"))
    return None if site_id is None or str(site_id).strip() in {"", "nan"} else str(site_id).strip()


def _geometry_problem(geom: BaseGeometry | None) -> str | None:
    """Why a geometry cannot be a title outline, or None: the rules measure hectares on it."""
    if geom is None or geom.is_empty:
        return "empty geometry (no polygon, or a point without lon/lat)"
    if not geom.is_valid:
        return f"invalid geometry ({shapely.is_valid_reason(geom)})"
    return None


@dataclass(frozen=True)
class _Licence:
    """What a row's phase (SIGMINE) or status (native registries) says about its title."""

    status: str
    kind: str
    allows: bool
    """The title allows extraction (its validity window is checked by the rules)."""
    phase: str


def _licence(r: dict[str, Any], *, spec: dict[str, Any]) -> _Licence | str:
    """The row's licence, or why it is rejected: an unknown phase or status is never guessed."""
    col = spec.get
    phases: dict[str, dict[str, Any]] = spec.get("phases", {})
    if phases:
        phase = str(r.get(col("phase", ""), "") or "").strip()
        if phase not in phases:
            return f"unknown licence phase {phase!r}; add it to the phases table"
        return _Licence(
            status=str(phases[phase]["status"]),
            kind=str(phases[phase]["kind"]),
            allows=bool(phases[phase]["allows_extraction"]),
            phase=phase,
        )
    status = str(r.get(col("licence_status", "licence_status"), "") or "").strip().lower()
    if status not in LICENCE_STATUSES:
        return f"unknown licence status {status!r}; use one of {', '.join(LICENCE_STATUSES)}"
    # the validity window is checked by the rules against the detection date, so a
    # registry read today and one read next year give the same sites
    return _Licence(status=status, kind=status, allows=status == "active", phase=status)


def _site_row(
    r: dict[str, Any], *, row: int, site_id: str, geom: BaseGeometry | None, spec: dict[str, Any]
) -> dict[str, Any] | str:
    """One registry row as a site, or the reason it is rejected (checks in the order the
    report names them, so one row gets one reason)."""
    col = spec.get
    problem = _geometry_problem(geom)
    if problem is not None:
        return problem
    valid_from = _to_date(r.get(col("licence_valid_from", ""), None))
    valid_to = _to_date(r.get(col("licence_valid_to", ""), None))
    if valid_from is not None and valid_to is not None and valid_from > valid_to:
        return f"dates inverted (valid from {valid_from.date()} after valid to {valid_to.date()})"
    licence = _licence(r, spec=spec)
    if isinstance(licence, str):
        return licence
    return {
        "site_id": site_id,
        "name": str(r.get(col("name", "name"), site_id) or site_id),
        "operator": str(r.get(col("operator", "operator"), "") or ""),
        "licence_status": licence.status,
        "licence_kind": licence.kind,
        "allows_extraction": licence.allows,
        "phase": licence.phase,
        "licence_valid_from": valid_from,
        "licence_valid_to": valid_to,
        "last_event_date": _event_date(r.get(col("last_event", ""), None)),
        "last_event": _event_text(r.get(col("last_event", ""), None)),
        "mineral": str(r.get(col("mineral", "mineral"), "") or ""),
        "registry": str(spec.get("registry", "")),
        "radius_m": float(r["radius_m"]) if "radius_m" in r and r["radius_m"] == r["radius_m"] else np.nan,
        "source_rows": [row],
        "geometry": geom,
    }


def _inside_aois(
    frame: gpd.GeoDataFrame, *, aois: gpd.GeoDataFrame | None, report: RegistryReport
) -> gpd.GeoDataFrame:
    """Sites that touch an AOI; every source row of the others is reported, so a title
    dropped for lying elsewhere is never dropped silently."""
    if aois is None or not len(frame):
        return frame
    inside = frame.intersects(aois.to_crs(WGS84).union_all())
    for rec in frame[~inside].itertuples():
        for row in rec.source_rows:
            report.rejected.append(Rejection(row, rec.site_id, "outside every AOI"))
    return frame[inside]


def _merge_parts(rows: list[dict[str, Any]], report: RegistryReport, *, merge: bool) -> list[dict[str, Any]]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_id.setdefault(r["site_id"], []).append(r)
    out = []
    for site_id, parts in by_id.items():
        if len(parts) == 1:
            out.append(parts[0])
            continue
        if not merge:
            first = parts[0]["source_rows"][0]
            report.rejected += [
                Rejection(p["source_rows"][0], site_id, f"duplicate site id (first at row {first})")
                for p in parts[1:]
            ]
            out.append(parts[0])
            continue
        latest = max(parts, key=lambda p: p["last_event_date"] or pd.Timestamp.min)
        same = [p for p in parts if p["phase"] == latest["phase"]]
        for p in parts:
            if p["phase"] != latest["phase"]:
                report.rejected.append(
                    Rejection(
                        p["source_rows"][0],
                        site_id,
                        f"conflicting duplicate: phase {p['phase']!r} vs {latest['phase']!r} "
                        f"of the most recent part (row {latest['source_rows'][0]}), which is kept",
                    )
                )
        merged = dict(latest)
        merged["geometry"] = gpd.GeoSeries([p["geometry"] for p in same]).union_all()
        merged["source_rows"] = sorted(r for p in same for r in p["source_rows"])
        if len(same) > 1:
            report.merged[site_id] = merged["source_rows"]
        out.append(merged)
    return out
