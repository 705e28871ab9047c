"""Compliance rules: named, versioned, with thresholds from config.

Each rule turns detections (and sites, AOI) into *findings*: one row per problem with the
offending geometry, hectares and detection ids. Areas and distances are measured in the
AOI's equal-area CRS, never in degrees. ``pipeline.comply.flags`` turns findings into flags.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from pipeline.config import ComplyParams
from pipeline.records import WGS84, Aoi

RULEBOOK_VERSION = "2026.11.1"

FINDING_COLUMNS = [
    "rule_id",
    "site_id",
    "group_key",
    "detection_ids",
    "area_ha",
    "mined_area_ha",
    "first_seen",
    "last_seen",
    "periods",
]


@dataclass(frozen=True)
class Rule:
    """A compliance rule's identity and wording."""

    rule_id: str
    version: str
    severity: str
    reason: str
    """One-sentence reason, ``str.format`` fields from the flag's columns."""
    clause: str
    """The due-diligence clause the rule supports."""


RULES: dict[str, Rule] = {
    r.rule_id: r
    for r in [
        Rule(
            "mining_in_protected_area",
            "1",
            "high",
            "{area_ha:.1f} ha of mining detected inside {aoi_name} ({designation}), "
            "first seen {first_seen}, last seen {last_seen}.",
            "OECD DDG Annex II: serious abuses / illegal extraction in protected areas; "
            "Forest Smart Mining: no mining in protected areas; CRAFT module 3 (legality).",
        ),
        Rule(
            "clearing_outside_licence",
            "1",
            "medium",
            "{area_ha:.1f} ha of mining within {near_site_m:.0f} m of title {site_id} but "
            "outside its licensed polygon, last seen {last_seen}.",
            "OECD DDG Annex II: illegal extraction; CRAFT module 3 (legality of the mining "
            "area); Forest Smart Mining: footprint limited to the licensed area.",
        ),
        Rule(
            "unregistered_mining",
            "1",
            "high",
            "{area_ha:.1f} ha of mining with no title that allows extraction within "
            "{near_site_m:.0f} m, last seen {last_seen}.",
            "OECD DDG Annex II: illegal/informal extraction, risk of conflict financing; "
            "CRAFT module 1 (identification of the producer).",
        ),
        Rule(
            "activity_without_valid_licence",
            "1",
            "high",
            "{area_ha:.1f} ha of mining inside title {site_id}, whose phase '{phase}' "
            "({licence_kind}) does not allow extraction, last seen {last_seen}.",
            "OECD DDG Annex II: illegal extraction; CRAFT module 3 (legal mining title).",
        ),
        Rule(
            "turbidity_downstream",
            "1",
            "medium",
            "River turbidity downstream of site {site_id} is {downstream_fnu:.0f} FNU, "
            "{ratio:.1f}x the {upstream_fnu:.0f} FNU upstream.",
            "OECD DDG Annex II (environmental harm, mercury/sediment); CRAFT module 5 "
            "(environment); Forest Smart Mining: water management.",
        ),
        Rule(
            "compliant",
            "1",
            "info",
            "Title {site_id} allows extraction and no mining was detected outside it.",
            "OECD DDG Step 2 (risk assessment): no red flag found for this site.",
        ),
    ]
}


def cell_key(lon: float, lat: float, *, cell_deg: float) -> str:
    """Grid cell of a point, used to keep one flag id for mining that recurs nearby."""
    return f"{math.floor(lon / cell_deg)}:{math.floor(lat / cell_deg)}@{cell_deg:g}"


def _aggregate(pieces: gpd.GeoDataFrame, *, rule_id: str, by: str) -> gpd.GeoDataFrame:
    """Group pieces (geometry in a metric CRS) into one finding per ``by`` value."""
    if pieces.empty:
        return gpd.GeoDataFrame(columns=[*FINDING_COLUMNS, "geometry"], geometry="geometry", crs=pieces.crs)
    pieces = pieces.assign(area_ha=pieces.area / 1e4)
    groups = []
    for key, part in pieces.groupby(by, sort=True):
        groups.append(
            {
                "rule_id": rule_id,
                "site_id": part["site_id"].iloc[0] if "site_id" in part else None,
                "group_key": str(key),
                "detection_ids": ",".join(sorted(set(part["detection_id"]))),
                # overlapping detections of different periods: count each hectare once
                "area_ha": float(part.geometry.union_all().area / 1e4),
                "mined_area_ha": float(
                    part.drop_duplicates("detection_id")["mined_area_ha"].sum(min_count=1)
                ),
                "first_seen": min(part["first_seen"]),
                "last_seen": max(part["last_seen"]),
                "periods": ",".join(sorted(set(part["period"]))),
                "geometry": part.geometry.union_all(),
            }
        )
    return gpd.GeoDataFrame(groups, geometry="geometry", crs=pieces.crs)


def _with_cells(pieces: gpd.GeoDataFrame, *, cell_deg: float) -> gpd.GeoDataFrame:
    points = pieces.representative_point().to_crs(WGS84)
    keys = [cell_key(p.x, p.y, cell_deg=cell_deg) for p in points]
    return pieces.assign(cell=keys)


def _pieces(detections: gpd.GeoDataFrame, mask: object) -> gpd.GeoDataFrame:
    out = detections.copy()
    out["geometry"] = detections.geometry.intersection(mask)
    return out[~out.geometry.is_empty & (out.geometry.area > 0)]


def mining_in_protected_area(
    detections: gpd.GeoDataFrame, *, aoi: Aoi, crs: CRS, params: ComplyParams
) -> gpd.GeoDataFrame:
    """Mining detections inside the AOI when the AOI is a protected area / territory.

    Supports OECD DDG Annex II and Forest Smart Mining's no-go principle for protected
    areas. One finding per ``footprint_cell_deg`` grid cell, so a flag keeps its id while
    the mining front grows night after night.
    """
    if not aoi.protected or detections.empty:
        return _aggregate(detections.iloc[:0], rule_id="mining_in_protected_area", by="cell")
    area = gpd.GeoSeries([aoi.geometry], crs=WGS84).to_crs(crs).iloc[0]
    pieces = _with_cells(_pieces(detections, area), cell_deg=params.footprint_cell_deg)
    return _aggregate(pieces.assign(site_id=None), rule_id="mining_in_protected_area", by="cell")


def registry_rules(
    detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, params: ComplyParams
) -> list[gpd.GeoDataFrame]:
    """``activity_without_valid_licence``, ``clearing_outside_licence`` and
    ``unregistered_mining``, all in the metric CRS of the inputs.

    * Mining inside a title that allows extraction is what the title is for: no finding.
    * Mining inside titles that do not allow extraction (applications, exploration,
      availability, expired / suspended) and outside every extraction title:
      ``activity_without_valid_licence`` for each such title (OECD DDG Annex II).
    * Mining outside every title: ``clearing_outside_licence`` when within ``near_site_m``
      of a title that allows extraction (attributed to the nearest one), else
      ``unregistered_mining`` grouped by grid cell.
    """
    empty = detections.iloc[:0]
    if detections.empty:
        return [
            _aggregate(empty, rule_id=r, by="site_id")
            for r in (
                "activity_without_valid_licence",
                "clearing_outside_licence",
                "unregistered_mining",
            )
        ]
    licensed = sites[sites["allows_extraction"].astype(bool)]
    unlicensed = sites[~sites["allows_extraction"].astype(bool)]
    licensed_union = licensed.geometry.union_all() if len(licensed) else None
    all_union = sites.geometry.union_all() if len(sites) else None

    outside_licensed = detections
    if licensed_union is not None:
        outside_licensed = detections.assign(geometry=detections.geometry.difference(licensed_union))
        outside_licensed = outside_licensed[~outside_licensed.geometry.is_empty]

    # activity_without_valid_licence: pieces of detections inside non-extraction titles
    if len(unlicensed) and not outside_licensed.empty:
        inside = gpd.overlay(
            outside_licensed[
                ["detection_id", "period", "first_seen", "last_seen", "mined_area_ha", "geometry"]
            ],
            unlicensed[["site_id", "geometry"]],
            how="intersection",
            keep_geom_type=True,
        )
    else:
        inside = empty.assign(site_id=pd.Series(dtype=object))
    awvl = _aggregate(inside, rule_id="activity_without_valid_licence", by="site_id")

    outside_all = outside_licensed
    if all_union is not None and not outside_all.empty:
        outside_all = outside_all.assign(geometry=outside_all.geometry.difference(all_union))
        outside_all = outside_all[~outside_all.geometry.is_empty & (outside_all.geometry.area > 0)]
    near_site: list[object] = [None] * len(outside_all)
    if len(licensed) and not outside_all.empty:
        joined = gpd.sjoin_nearest(
            outside_all[["geometry"]].reset_index(drop=True),
            licensed[["site_id", "geometry"]].reset_index(drop=True),
            how="left",
            max_distance=params.near_site_m,
            distance_col="distance_m",
        )
        joined = joined[~joined.index.duplicated(keep="first")]
        near_site = [s if isinstance(s, str) else None for s in joined["site_id"]]
    outside_all = outside_all.assign(site_id=near_site)
    near = outside_all[outside_all["site_id"].notna()]
    far = _with_cells(outside_all[outside_all["site_id"].isna()], cell_deg=params.footprint_cell_deg)
    return [
        awvl,
        _aggregate(near, rule_id="clearing_outside_licence", by="site_id"),
        _aggregate(far, rule_id="unregistered_mining", by="cell"),
    ]


def turbidity_downstream(river_stats: pd.DataFrame, *, params: ComplyParams) -> pd.DataFrame:
    """Sites whose downstream median FNU is >= ``turbidity_ratio`` x upstream and >= the
    ``turbidity_floor_fnu``.

    ``river_stats`` has ``site_id``, ``upstream_fnu``, ``downstream_fnu`` (medians over a
    reach each side of the site) and may have ``first_seen``/``last_seen``.
    Supports OECD DDG Annex II environmental risk and CRAFT module 5.
    """
    if river_stats.empty:
        return river_stats.assign(ratio=pd.Series(dtype=float))
    up = river_stats["upstream_fnu"].astype(float)
    down = river_stats["downstream_fnu"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(up > 0, down / up, np.inf)
    fires = (ratio >= params.turbidity_ratio) & (down >= params.turbidity_floor_fnu)
    return river_stats.assign(ratio=ratio)[fires].reset_index(drop=True)


def compliant_sites(
    sites: gpd.GeoDataFrame, *, flagged_site_ids: set[str], aoi_area: object
) -> gpd.GeoDataFrame:
    """Sites in the AOI that allow extraction and carry none of the other flags."""
    ok = sites[
        sites["allows_extraction"].astype(bool)
        & ~sites["site_id"].isin(flagged_site_ids)
        & sites.intersects(aoi_area)
    ]
    return ok


RuleFunction = Callable[..., gpd.GeoDataFrame]
