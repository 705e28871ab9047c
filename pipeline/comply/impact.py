"""Per-AOI impact statistics: mined hectares per zone and period, inside / outside titles.

This is the table an NGO quotes ("N ha of mining inside the territory in 2024, M ha of it
outside any mining title"). Rules of the arithmetic, so a figure can be checked by hand:

* Hectares are the **footprint of the detection polygons**, measured in the AOI's
  Lambert equal-area CRS. For Amazon Mining Watch this is the simplified outline, larger
  than AMW's own ``Mined area (ha)`` estimate, which is reported beside it
  (``source_mined_area_ha``, summed over detections whose footprint touches the zone), and
  apportioned the way AMW publishes its per-territory statistics (``amw_method_mined_ha``:
  each polygon's ``Mined area (ha)`` times the share of the polygon's area inside the zone;
  for Kayapó 2018 this gives 4,281 ha against AMW's published 4,280.8 ha).
* A hectare counts once: per period, only footprint not already counted in an earlier period
  (``mined_ha``), and overlapping titles are dissolved before intersecting.
* By licence phase, a hectare under titles of several phases goes to the first phase in
  ``phase_order`` (default: phases that allow extraction first, then the others, each
  alphabetically), so the phases add up to ``in_titles_ha`` exactly.
* Whether a title allows extraction is checked on the last day of each period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry.base import BaseGeometry

from pipeline.comply.titles import extraction_allowed
from pipeline.core.records import KIND_MINING, WGS84, Aoi

SUMMARY_COLUMNS = [
    "aoi_id",
    "zone_id",
    "zone_name",
    "zone_designation",
    "period",
    "mined_ha",
    "cumulative_ha",
    "in_titles_ha",
    "in_extraction_titles_ha",
    "in_non_extraction_titles_ha",
    "outside_titles_ha",
    "source_mined_area_ha",
    "amw_method_mined_ha",
]
PHASE_COLUMNS = ["aoi_id", "zone_id", "period", "phase", "licence_kind", "allows_extraction", "ha"]
TOTAL = "total"


@dataclass
class ImpactTables:
    """The two impact tables of one AOI."""

    summary: pd.DataFrame
    """One row per zone and period (``SUMMARY_COLUMNS``), plus a ``total`` row per zone."""
    by_phase: pd.DataFrame
    """Hectares per zone, period and licence phase (``PHASE_COLUMNS``); empty without a registry."""


def _ha(geom: BaseGeometry | None) -> float:
    return 0.0 if geom is None or geom.is_empty else float(geom.area / 1e4)


def _union(frame: gpd.GeoDataFrame) -> BaseGeometry | None:
    return frame.geometry.union_all() if len(frame) else None


def _inter(a: BaseGeometry | None, b: BaseGeometry | None) -> BaseGeometry | None:
    return None if a is None or b is None else a.intersection(b)


def _minus(a: BaseGeometry | None, b: BaseGeometry | None) -> BaseGeometry | None:
    return a if a is None or b is None else a.difference(b)


def default_phase_order(sites: pd.DataFrame) -> list[str]:
    """Phases that allow extraction first, then the rest, each alphabetically."""
    table = sites[["phase", "allows_extraction"]].drop_duplicates("phase")
    return [
        str(p) for p in table.sort_values(["allows_extraction", "phase"], ascending=[False, True])["phase"]
    ]


@dataclass(frozen=True)
class _Zone:
    """One zone the tables report on: the AOI itself or a further protected area."""

    zone_id: str
    name: str
    designation: str
    geometry: gpd.GeoSeries
    """One polygon, EPSG:4326."""


@dataclass(frozen=True)
class _PeriodFootprint:
    """Footprint first counted in one period (or, for ``total``, all of it) in one zone."""

    label: str
    new: BaseGeometry | None
    """Footprint not counted in an earlier period, in the AOI's equal-area CRS."""
    end: object
    """Last ``last_seen`` of the period (a date or timestamp; None without mining): the day
    titles are checked on."""
    source_ha: float
    """The sources' own mined-area estimate (ha), summed over the period's detections."""
    apportioned_ha: float
    """The sources' estimate apportioned by each polygon's share inside the zone (ha)."""


def impact_tables(
    detections: gpd.GeoDataFrame,
    *,
    aoi: Aoi,
    sites: gpd.GeoDataFrame | None = None,
    zones: gpd.GeoDataFrame | None = None,
    phase_order: Sequence[str] | None = None,
) -> ImpactTables:
    """Mined hectares per zone and period, inside / outside titles and by licence phase.

    Parameters
    ----------
    detections
        Detections (any CRS) with ``kind``, ``period``, ``last_seen`` and ``mined_area_ha``;
        only ``mining_deforestation`` counts.
    aoi
        The AOI; it is always a zone (``zone_id`` = ``aoi_id``). Areas are computed in its
        equal-area CRS.
    sites
        MineSite table (``site_id``, ``phase``, ``licence_kind``, ``allows_extraction``...).
        Without it the title columns are NaN.
    zones
        Further protected areas / territories (``zone_id``, ``name``, ``designation``).
    phase_order
        Priority of phases for hectares under several overlapping titles.

    Returns
    -------
    ImpactTables
        Hectares (ha), computed in ``aoi.equal_area_crs``.
    """
    crs = aoi.equal_area_crs
    mining = detections[detections["kind"] == KIND_MINING].to_crs(crs)
    ends = _period_ends(mining)
    site_m = sites.to_crs(crs) if sites is not None else None
    titles = _Titles(site_m) if site_m is not None else None
    order = (
        list(phase_order)
        if phase_order is not None
        else (default_phase_order(site_m) if site_m is not None else [])
    )
    summary: list[dict[str, object]] = []
    phases: list[dict[str, object]] = []
    for zone in _zones(aoi, zones=zones):
        area = zone.geometry.to_crs(crs).iloc[0]
        footprints, counted = _zone_footprints(mining[mining.intersects(area)], area=area, ends=ends)
        zone_summary, zone_phases = _zone_rows(
            footprints, counted=counted, aoi_id=aoi.aoi_id, zone=zone, titles=titles, order=order
        )
        summary += zone_summary
        phases += zone_phases
    out = pd.DataFrame(summary).reindex(columns=SUMMARY_COLUMNS)
    return ImpactTables(summary=out, by_phase=pd.DataFrame(phases).reindex(columns=PHASE_COLUMNS))


def _zones(aoi: Aoi, *, zones: gpd.GeoDataFrame | None) -> list[_Zone]:
    """The AOI first, then the further zones: the AOI is always reported, even alone."""
    out = [_Zone(aoi.aoi_id, aoi.name, aoi.designation, gpd.GeoSeries([aoi.geometry], crs=WGS84))]
    if zones is not None:
        for z in zones.to_crs(WGS84).itertuples():
            out.append(
                _Zone(
                    str(z.zone_id),
                    str(z.name),
                    str(getattr(z, "designation", "")),
                    gpd.GeoSeries([z.geometry], crs=WGS84),
                )
            )
    return out


def _period_ends(mining: gpd.GeoDataFrame) -> pd.Series:
    """Last ``last_seen`` per period, in date order: the order periods are counted in, so a
    hectare goes to the earliest period that saw it."""
    return (
        mining.groupby("period")["last_seen"].max().sort_values() if len(mining) else pd.Series(dtype=object)
    )


def _zone_footprints(
    in_zone: gpd.GeoDataFrame, *, area: BaseGeometry, ends: pd.Series
) -> tuple[list[_PeriodFootprint], BaseGeometry | None]:
    """Each period's footprint in the zone ``area`` not counted before, then the ``total``;
    and the union of all of it (equal-area CRS). Counting against what came before is what
    makes the periods add up to the total when sources report a scar again later."""
    counted: BaseGeometry | None = None
    out: list[_PeriodFootprint] = []
    apportioned = _apportioned(in_zone, area=area)
    for period in ends.index:
        inside = (in_zone["period"] == period).to_numpy()
        part = in_zone[inside]
        new = _minus(_inter(_union(part), area), counted)
        counted = new if counted is None else (counted if new is None else counted.union(new))
        out.append(
            _PeriodFootprint(
                str(period),
                new,
                ends[period],
                float(part["mined_area_ha"].sum(min_count=1)),
                float(apportioned[inside].sum(min_count=1)),
            )
        )
    out.append(
        _PeriodFootprint(
            TOTAL,
            counted,
            ends.iloc[-1] if len(ends) else None,
            float(in_zone["mined_area_ha"].sum(min_count=1)),
            float(apportioned.sum(min_count=1)),
        )
    )
    return out, counted


def _apportioned(in_zone: gpd.GeoDataFrame, *, area: BaseGeometry) -> pd.Series:
    """Each detection's own mined-area estimate times the share of its polygon inside the
    zone (equal-area CRS): Amazon Mining Watch's method for its per-territory figures."""
    whole = in_zone.geometry.area.to_numpy()
    inside = in_zone.geometry.intersection(area).area.to_numpy()
    share = np.divide(inside, whole, out=np.zeros_like(whole), where=whole > 0)
    return pd.Series(in_zone["mined_area_ha"].to_numpy(dtype=float) * share, index=in_zone.index)


def _zone_rows(
    footprints: list[_PeriodFootprint],
    *,
    counted: BaseGeometry | None,
    aoi_id: str,
    zone: _Zone,
    titles: _Titles | None,
    order: Sequence[str],
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Summary rows and by-phase rows of one zone; the title columns only with a registry,
    because without one "outside titles" cannot be told from "registry not loaded"."""
    summary: list[dict[str, object]] = []
    phases: list[dict[str, object]] = []
    cumulative = 0.0
    for fp in footprints:
        row: dict[str, object] = {
            "aoi_id": aoi_id,
            "zone_id": zone.zone_id,
            "zone_name": zone.name,
            "zone_designation": zone.designation,
            "period": fp.label,
            "mined_ha": _ha(fp.new),
            "source_mined_area_ha": fp.source_ha,
            "amw_method_mined_ha": fp.apportioned_ha,
        }
        cumulative = _ha(counted) if fp.label == TOTAL else cumulative + _ha(fp.new)
        row["cumulative_ha"] = cumulative
        if titles is not None:
            row |= _title_split(fp.new, titles, on=fp.end)
            phases += [
                {"aoi_id": aoi_id, "zone_id": zone.zone_id, "period": fp.label} | p
                for p in _by_phase(fp.new, titles, order=order)
            ]
        summary.append(row)
    return summary, phases


class _Titles:
    """The sites' dissolved outlines, each built once per table (every zone and period
    measures against the same ones): all titles, titles per phase, extraction titles per day."""

    def __init__(self, sites: gpd.GeoDataFrame) -> None:
        self.sites = sites
        self.all = _union(sites)
        self._phase: dict[str, BaseGeometry | None] = {}
        self._good: dict[date | None, BaseGeometry | None] = {}

    def phase(self, phase: str) -> BaseGeometry | None:
        if phase not in self._phase:
            self._phase[phase] = _union(self.sites[self.sites["phase"] == phase])
        return self._phase[phase]

    def extraction(self, day: date | None) -> BaseGeometry | None:
        if day not in self._good:
            self._good[day] = _union(self.sites[extraction_allowed(self.sites, on=day)])
        return self._good[day]


def _title_split(new: BaseGeometry | None, titles: _Titles, *, on: object) -> dict[str, float]:
    day = pd.Timestamp(str(on)).date() if on is not None and str(on) not in {"NaT", "nan", "None"} else None
    in_titles = _ha(_inter(new, titles.all))
    in_good = _ha(_inter(new, titles.extraction(day)))
    return {
        "in_titles_ha": in_titles,
        "in_extraction_titles_ha": in_good,
        "in_non_extraction_titles_ha": in_titles - in_good,
        "outside_titles_ha": _ha(new) - in_titles,
    }


def _by_phase(new: BaseGeometry | None, unions: _Titles, *, order: Sequence[str]) -> list[dict[str, object]]:
    if new is None or new.is_empty:
        return []
    out = []
    left: BaseGeometry = new
    for phase in order:
        titles = unions.sites[unions.sites["phase"] == phase]
        if titles.empty or left.is_empty:
            continue
        piece = _inter(left, unions.phase(phase))
        ha = _ha(piece)
        if ha > 0:
            out.append(
                {
                    "phase": phase,
                    "licence_kind": str(titles["licence_kind"].iloc[0]),
                    "allows_extraction": bool(titles["allows_extraction"].iloc[0]),
                    "ha": ha,
                }
            )
            left = left.difference(piece)
    return out
