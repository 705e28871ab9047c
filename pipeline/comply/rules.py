"""Compliance rules: six small named functions, versioned, with thresholds from config.

Each rule turns detections (and sites, the AOI) into *findings*: one row per problem with the
offending geometry, hectares and detection ids. Areas and distances are measured in the
metric CRS of the inputs (the AOI's equal-area CRS), never in degrees.
``pipeline.comply.flags`` turns findings into flags; every flag carries the rule's id and
version, the rulebook version, the thresholds used and the due-diligence clause.

The rules partition mining: a hectare of mining inside a title that allows extraction raises
nothing; inside a title that does not, ``activity_without_valid_licence``; outside every title,
``clearing_outside_licence`` when within ``near_site_m`` of an extraction title, else
``unregistered_mining``. No hectare of registry-joined mining falls between two rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from pipeline.core.config import ComplyParams
from pipeline.core.records import WGS84, Aoi

RULEBOOK_VERSION = "2026.11.2"

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
    """A compliance rule's identity, wording and the thresholds it reads."""

    rule_id: str
    version: str
    """Bumped whenever what the rule fires on changes."""
    severity: str
    """info, low, medium, high."""
    reason: str
    """One-sentence reason, ``str.format`` fields from the flag's columns."""
    clause: str
    """The due-diligence clauses the rule supports (OECD DDG Annex II, CRAFT, Forest Smart Mining)."""
    thresholds: tuple[str, ...] = ()
    """Names of the :class:`~pipeline.core.config.ComplyParams` fields the rule reads."""

    def threshold_text(self, params: ComplyParams) -> str:
        """``name=value`` pairs of the thresholds, as written into every flag."""
        return ", ".join(f"{name}={getattr(params, name):g}" for name in self.thresholds)


_OECD = "OECD Due Diligence Guidance for Minerals, Annex II"
RULES: dict[str, Rule] = {
    r.rule_id: r
    for r in [
        Rule(
            "mining_in_protected_area",
            "1",
            "high",
            "{area_ha:,.1f} ha of mining detected inside {aoi_name} ({designation}), "
            "first seen {first_seen}, last seen {last_seen}.",
            f"{_OECD} (serious abuses; illegal extraction in protected areas and indigenous "
            "territories); CRAFT module 3 (legitimacy of the mining area); Forest Smart Mining "
            "principle: no-go zones for protected areas.",
            ("min_flag_area_ha", "footprint_cell_deg"),
        ),
        Rule(
            "clearing_outside_licence",
            "1",
            "medium",
            "{area_ha:,.1f} ha of mining within {near_site_m:,.0f} m of title {site_id} but "
            "outside its licensed polygon, last seen {last_seen}.",
            f"{_OECD} (illegal extraction, paragraph on legitimacy of mining); CRAFT module 3 "
            "(mining only inside the legal title); Forest Smart Mining principle: footprint "
            "limited to the licensed area.",
            ("near_site_m", "min_flag_area_ha"),
        ),
        Rule(
            "unregistered_mining",
            "1",
            "high",
            "{area_ha:,.1f} ha of mining with no title that allows extraction within "
            "{near_site_m:,.0f} m, last seen {last_seen}.",
            f"{_OECD} (informal / illegal extraction, risk of conflict financing); CRAFT "
            "module 1 (identification of the producer) and module 3 (legitimacy).",
            ("near_site_m", "min_flag_area_ha", "footprint_cell_deg"),
        ),
        Rule(
            "activity_without_valid_licence",
            "1",
            "high",
            "{area_ha:,.1f} ha of mining inside title {site_id}, whose phase '{phase}' "
            "({licence_kind}) does not allow extraction, last seen {last_seen}.",
            f"{_OECD} (illegal extraction without a valid title); CRAFT module 3 (legal "
            "mining title in force).",
            ("min_flag_area_ha",),
        ),
        Rule(
            "turbidity_downstream",
            "1",
            "medium",
            "River turbidity downstream of site {site_id} is {downstream_fnu:,.0f} FNU, "
            "{ratio:,.1f}x the {upstream_fnu:,.0f} FNU upstream.",
            f"{_OECD} (environmental harm: sediment and mercury release); CRAFT module 5 "
            "(environment); Forest Smart Mining principle: water management.",
            ("turbidity_ratio", "turbidity_floor_fnu"),
        ),
        Rule(
            "compliant",
            "1",
            "info",
            "Title {site_id} allows extraction and no mining was detected outside it.",
            "OECD Due Diligence Guidance Step 2 (risk assessment): no red flag found for this "
            "site in the period; CRAFT module 3 (legal title in force).",
        ),
    ]
}


def cell_key(lon: float, lat: float, *, cell_deg: float) -> str:
    """Grid cell of a point (EPSG:4326 lon/lat, degrees), used to keep one flag id for
    mining that recurs nearby."""
    return f"{math.floor(lon / cell_deg)}:{math.floor(lat / cell_deg)}@{cell_deg:g}"


def _empty(crs: CRS | None) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns=[*FINDING_COLUMNS, "geometry"], geometry="geometry", crs=crs)


def _aggregate(pieces: gpd.GeoDataFrame, *, rule_id: str, by: str) -> gpd.GeoDataFrame:
    """Group pieces (geometry in a metric CRS) into one finding per ``by`` value."""
    if pieces.empty:
        return _empty(pieces.crs)
    groups = []
    for key, part in pieces.groupby(by, sort=True):
        footprint = part.geometry.union_all()
        groups.append(
            {
                "rule_id": rule_id,
                "site_id": part["site_id"].iloc[0] if "site_id" in part else None,
                "group_key": str(key),
                "detection_ids": ",".join(sorted(set(part["detection_id"]))),
                # overlapping detections of different periods: count each hectare once
                "area_ha": float(footprint.area / 1e4),
                "mined_area_ha": float(
                    part.drop_duplicates("detection_id")["mined_area_ha"].sum(min_count=1)
                ),
                "first_seen": min(part["first_seen"]),
                "last_seen": max(part["last_seen"]),
                "periods": ",".join(sorted(set(map(str, part["period"])))),
                "geometry": footprint,
            }
        )
    return gpd.GeoDataFrame(groups, geometry="geometry", crs=pieces.crs)


def _clip(detections: gpd.GeoDataFrame, mask: object, *, keep: bool = True) -> gpd.GeoDataFrame:
    """Pieces of detections inside (``keep``) or outside ``mask``; empty slivers dropped."""
    if mask is None:
        return detections.copy() if not keep else detections.iloc[:0].copy()
    out = detections.copy()
    out["geometry"] = detections.geometry.intersection(mask) if keep else detections.geometry.difference(mask)
    return out[~out.geometry.is_empty & (out.geometry.area > 0)]


def _components(pieces: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Disjoint connected parts of the pieces' union: one row per (part, detection) with the
    detection's attributes and the *part's* geometry, plus a ``part`` number.

    Detections of different periods overlap; grouping parts instead of pieces keeps every
    hectare in exactly one finding.
    """
    if pieces.empty:
        return pieces.assign(part=pd.Series(dtype=int))
    union = gpd.GeoSeries([pieces.geometry.union_all()], crs=pieces.crs).explode(index_parts=False)
    parts = gpd.GeoDataFrame(geometry=union.to_numpy(), crs=pieces.crs)
    parts = parts[parts.area > 0].reset_index(drop=True)
    parts["part"] = range(len(parts))
    polys = pieces.explode(index_parts=False).reset_index(drop=True)
    polys = polys[polys.area > 0]
    # a piece's interior point lies in exactly one part (robust to the union's re-noding)
    points = polys.drop(columns="geometry").set_geometry(
        polys.representative_point().to_numpy(), crs=pieces.crs
    )
    hit = gpd.sjoin_nearest(points, parts, how="left")
    hit = hit[~hit.index.duplicated(keep="first")].drop_duplicates(["part", "detection_id"])
    geoms = parts.set_index("part").geometry
    out = hit.drop(columns=["geometry", "index_right"], errors="ignore")
    return gpd.GeoDataFrame(out, geometry=geoms.loc[out["part"]].to_numpy(), crs=pieces.crs)


def _part_cells(comps: gpd.GeoDataFrame, *, cell_deg: float) -> gpd.GeoDataFrame:
    """Grid cell of each part (its interior point), shared by all rows of the part."""
    if comps.empty:
        return comps.assign(cell=pd.Series(dtype=object))
    first = comps.drop_duplicates("part").set_index("part")
    points = gpd.GeoSeries(first.geometry, crs=comps.crs).representative_point().to_crs(WGS84)
    cells = {part: cell_key(p.x, p.y, cell_deg=cell_deg) for part, p in points.items()}
    return comps.assign(cell=comps["part"].map(cells))


def extraction_allowed(sites: gpd.GeoDataFrame, *, on: date | None) -> pd.Series:
    """Boolean per site: the title allows extraction on ``on`` (validity window checked when
    the registry gives one; SIGMINE gives none)."""
    ok = sites["allows_extraction"].astype(bool)
    if on is None:
        return ok
    day = pd.Timestamp(on)
    for col, bad in (("licence_valid_to", lambda d: d < day), ("licence_valid_from", lambda d: d > day)):
        if col in sites:
            dates = pd.to_datetime(sites[col], errors="coerce")
            ok &= ~(dates.notna() & bad(dates))
    return ok


def as_of(detections: gpd.GeoDataFrame) -> date | None:
    """The latest ``last_seen`` date of the detections: the day titles are checked on."""
    seen = [d for d in detections["last_seen"] if d is not None and not pd.isna(d)] if len(detections) else []
    return pd.Timestamp(max(seen)).date() if seen else None


def _split_titles(sites: gpd.GeoDataFrame, detections: gpd.GeoDataFrame) -> tuple[object, object]:
    """Dissolved (extraction titles, other titles) in the sites' CRS, or None when empty."""
    ok = extraction_allowed(sites, on=as_of(detections))
    good, bad = sites[ok], sites[~ok]
    return (
        good.geometry.union_all() if len(good) else None,
        bad.geometry.union_all() if len(bad) else None,
    )


def mining_in_protected_area(
    detections: gpd.GeoDataFrame, *, aoi: Aoi, crs: CRS, params: ComplyParams
) -> gpd.GeoDataFrame:
    """Mining detections inside the AOI when the AOI is a protected area / territory.

    Rule ``mining_in_protected_area`` v1. Supports OECD DDG Annex II (serious abuses,
    illegal extraction), CRAFT module 3 and the Forest Smart Mining no-go principle. One
    finding per ``footprint_cell_deg`` grid cell so a flag keeps its id while the mining
    front grows night after night.

    Parameters
    ----------
    detections
        Mining detections in ``crs`` (metres).
    crs
        The AOI's equal-area CRS.
    """
    if not aoi.protected or detections.empty:
        return _empty(detections.crs)
    area = gpd.GeoSeries([aoi.geometry], crs=WGS84).to_crs(crs).iloc[0]
    parts = _part_cells(_components(_clip(detections, area)), cell_deg=params.footprint_cell_deg)
    return _aggregate(parts.assign(site_id=None), rule_id="mining_in_protected_area", by="cell")


def activity_without_valid_licence(
    detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, params: ComplyParams
) -> gpd.GeoDataFrame:
    """Mining inside titles that do not allow extraction, and outside every title that does.

    Rule ``activity_without_valid_licence`` v1: applications, exploration permits, areas up
    for bidding, and expired / suspended / not-yet-valid licences (validity checked on the
    detections' last date). One finding per title; a hectare in two such titles appears in
    both flags (each holder is asked), but impact statistics count it once. Supports OECD
    DDG Annex II (illegal extraction) and CRAFT module 3.
    """
    good, bad = _split_titles(sites, detections)
    if detections.empty or bad is None:
        return _empty(detections.crs)
    outside_good = _clip(detections, good, keep=False) if good is not None else detections
    ok = extraction_allowed(sites, on=as_of(detections))
    inside = gpd.overlay(
        outside_good[["detection_id", "period", "first_seen", "last_seen", "mined_area_ha", "geometry"]],
        sites.loc[~ok, ["site_id", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    return _aggregate(inside, rule_id="activity_without_valid_licence", by="site_id")


@dataclass(frozen=True)
class _Outside:
    """Mining outside every title, and the ``near_site_m`` zone around the titles that allow
    extraction: what both outside-title rules split (computed once for both)."""

    pieces: gpd.GeoDataFrame
    licensed: gpd.GeoDataFrame
    zone: object


def _outside(detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, params: ComplyParams) -> _Outside:
    all_titles = sites.geometry.union_all() if len(sites) else None
    outside = _clip(detections, all_titles, keep=False) if all_titles is not None else detections
    licensed = sites[extraction_allowed(sites, on=as_of(detections))]
    zone = licensed.geometry.union_all().buffer(params.near_site_m) if len(licensed) else None
    return _Outside(outside, licensed, zone)


def _outside_titles(detections: gpd.GeoDataFrame, split: _Outside | None, *, near: bool) -> gpd.GeoDataFrame:
    """Disjoint parts of mining outside every title, split at ``near_site_m`` (m) from the
    titles that allow extraction: the near side (``near=True``, with ``site_id`` of the
    nearest such title) or the far side. ``split`` is None when there is no mining."""
    if split is None:
        return _components(detections).assign(site_id=pd.Series(dtype=object))
    comps = _components(_clip(split.pieces, split.zone, keep=near))
    if not near or comps.empty:
        return comps.assign(site_id=None)
    first = comps.drop_duplicates("part")[["part", "geometry"]].reset_index(drop=True)
    joined = gpd.sjoin_nearest(
        first,
        split.licensed[["site_id", "geometry"]].reset_index(drop=True),
        how="left",
        distance_col="distance_m",
    )
    # ties: the lowest site id, so the attribution does not depend on row order
    joined = joined.sort_values(["part", "distance_m", "site_id"]).drop_duplicates("part")
    return comps.assign(site_id=comps["part"].map(joined.set_index("part")["site_id"]))


def _split_or_none(
    detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, params: ComplyParams
) -> _Outside | None:
    return None if detections.empty else _outside(detections, sites, params=params)


def _clearing(detections: gpd.GeoDataFrame, split: _Outside | None) -> gpd.GeoDataFrame:
    parts = _outside_titles(detections, split, near=True)
    return _aggregate(parts, rule_id="clearing_outside_licence", by="site_id")


def _unregistered(
    detections: gpd.GeoDataFrame, split: _Outside | None, *, params: ComplyParams
) -> gpd.GeoDataFrame:
    parts = _outside_titles(detections, split, near=False)
    far = _part_cells(parts, cell_deg=params.footprint_cell_deg)
    return _aggregate(far, rule_id="unregistered_mining", by="cell")


def clearing_outside_licence(
    detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, params: ComplyParams
) -> gpd.GeoDataFrame:
    """Mining outside every title but within ``near_site_m`` (m) of a title that allows
    extraction, attributed to the nearest such title.

    Rule ``clearing_outside_licence`` v1. Supports OECD DDG Annex II (illegal extraction),
    CRAFT module 3 and the Forest Smart Mining principle of a footprint limited to the
    licensed area. Mining that straddles the ``near_site_m`` line is split at it.
    """
    return _clearing(detections, _split_or_none(detections, sites, params=params))


def unregistered_mining(
    detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, params: ComplyParams
) -> gpd.GeoDataFrame:
    """Mining outside every title and farther than ``near_site_m`` (m) from any title that
    allows extraction, grouped by the ``footprint_cell_deg`` grid cell of each connected part.

    Rule ``unregistered_mining`` v1. Supports OECD DDG Annex II (informal extraction, conflict
    financing risk) and CRAFT modules 1 and 3.
    """
    return _unregistered(detections, _split_or_none(detections, sites, params=params), params=params)


def registry_rules(
    detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, params: ComplyParams
) -> list[gpd.GeoDataFrame]:
    """The three registry rules, in the metric CRS of the inputs (the outside-title split
    shared by the last two)."""
    split = _split_or_none(detections, sites, params=params)
    return [
        activity_without_valid_licence(detections, sites, params=params),
        _clearing(detections, split),
        _unregistered(detections, split, params=params),
    ]


def turbidity_downstream(river_stats: pd.DataFrame, *, params: ComplyParams) -> pd.DataFrame:
    """Sites whose downstream median FNU is >= ``turbidity_ratio`` x upstream and >=
    ``turbidity_floor_fnu``.

    Rule ``turbidity_downstream`` v1. Supports OECD DDG Annex II (environmental harm),
    CRAFT module 5 and Forest Smart Mining water management.

    Parameters
    ----------
    river_stats
        ``site_id``, ``upstream_fnu``, ``downstream_fnu`` (medians over a reach on each side
        of the site, FNU); may have ``first_seen``/``last_seen``. Upstream 0 FNU counts as an
        infinite ratio; NaN on either side never fires.

    Returns
    -------
    DataFrame
        The rows that fire, with ``ratio`` added.
    """
    if river_stats.empty:
        return river_stats.assign(ratio=pd.Series(dtype=float))
    up = river_stats["upstream_fnu"].astype(float).to_numpy()
    down = river_stats["downstream_fnu"].astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(up > 0, down / up, np.where(np.isnan(up), np.nan, np.inf))
    fires = (ratio >= params.turbidity_ratio) & (down >= params.turbidity_floor_fnu)
    return river_stats.assign(ratio=ratio)[fires].reset_index(drop=True)


def compliant_sites(
    sites: gpd.GeoDataFrame, *, flagged_site_ids: set[str], aoi_area: object, on: date | None = None
) -> gpd.GeoDataFrame:
    """Sites in the AOI whose title allows extraction (on ``on``) and carry no other flag.

    Rule ``compliant`` v1 (OECD DDG Step 2: no red flag for the site in the period).
    """
    ok = extraction_allowed(sites, on=on)
    return sites[ok & ~sites["site_id"].isin(flagged_site_ids) & sites.intersects(aoi_area)]


RuleFunction = Callable[..., gpd.GeoDataFrame]
