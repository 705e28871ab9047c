"""The rules that read the mining-title registry: activity without a valid licence, clearing
outside a licence, unregistered mining, and compliant titles.

The first three partition registry-joined mining: inside a title that allows extraction
raises nothing; inside a title that does not, ``activity_without_valid_licence``; outside
every title, ``clearing_outside_licence`` within ``near_site_m`` of an extraction title, else
``unregistered_mining``. All geometry is in the metric CRS of the inputs (metres, ha).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import geopandas as gpd
import pandas as pd

from pipeline.comply.findings import (
    aggregate_findings,
    apportion_mined_area,
    clip_pieces,
    connected_parts,
    empty_findings,
    part_cells,
)
from pipeline.comply.titles import as_of, extraction_allowed
from pipeline.core.config import ComplyParams


def _split_titles(sites: gpd.GeoDataFrame, detections: gpd.GeoDataFrame) -> tuple[object, object]:
    """Dissolved (extraction titles, other titles) in the sites' CRS, or None when empty."""
    ok = extraction_allowed(sites, on=as_of(detections))
    good, bad = sites[ok], sites[~ok]
    return (
        good.geometry.union_all() if len(good) else None,
        bad.geometry.union_all() if len(bad) else None,
    )


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
        return empty_findings(detections.crs)
    outside_good = clip_pieces(detections, good, keep=False) if good is not None else detections
    ok = extraction_allowed(sites, on=as_of(detections))
    inside = gpd.overlay(
        outside_good[["detection_id", "period", "first_seen", "last_seen", "mined_area_ha", "geometry"]],
        sites.loc[~ok, ["site_id", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    found = aggregate_findings(inside, rule_id="activity_without_valid_licence", by="site_id")
    return apportion_mined_area(found, detections)


@dataclass(frozen=True)
class _Outside:
    """Mining outside every title, and the ``near_site_m`` zone around the titles that allow
    extraction: what both outside-title rules split (computed once for both)."""

    pieces: gpd.GeoDataFrame
    licensed: gpd.GeoDataFrame
    zone: object


def _outside(detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, params: ComplyParams) -> _Outside:
    """Build the split both outside-title rules share, so the costly dissolves run once."""
    all_titles = sites.geometry.union_all() if len(sites) else None
    outside = clip_pieces(detections, all_titles, keep=False) if all_titles is not None else detections
    licensed = sites[extraction_allowed(sites, on=as_of(detections))]
    zone = licensed.geometry.union_all().buffer(params.near_site_m) if len(licensed) else None
    return _Outside(outside, licensed, zone)


def _outside_titles(detections: gpd.GeoDataFrame, split: _Outside | None, *, near: bool) -> gpd.GeoDataFrame:
    """Disjoint parts of mining outside every title, split at ``near_site_m`` (m) from the
    titles that allow extraction: the near side (``near=True``, with ``site_id`` of the
    nearest such title) or the far side. ``split`` is None when there is no mining."""
    if split is None:
        return connected_parts(detections).assign(site_id=pd.Series(dtype=object))
    comps = connected_parts(clip_pieces(split.pieces, split.zone, keep=near))
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
    """The shared split, or None without mining: the dissolves fail on no geometry."""
    return None if detections.empty else _outside(detections, sites, params=params)


def _clearing(detections: gpd.GeoDataFrame, split: _Outside | None) -> gpd.GeoDataFrame:
    """``clearing_outside_licence`` on a split already made (see :func:`registry_rules`)."""
    parts = _outside_titles(detections, split, near=True)
    found = aggregate_findings(parts, rule_id="clearing_outside_licence", by="site_id")
    return apportion_mined_area(found, detections)


def _unregistered(
    detections: gpd.GeoDataFrame, split: _Outside | None, *, params: ComplyParams
) -> gpd.GeoDataFrame:
    """``unregistered_mining`` on a split already made (see :func:`registry_rules`)."""
    parts = _outside_titles(detections, split, near=False)
    far = part_cells(parts, cell_deg=params.footprint_cell_deg)
    return apportion_mined_area(aggregate_findings(far, rule_id="unregistered_mining", by="cell"), detections)


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


def compliant_sites(
    sites: gpd.GeoDataFrame, *, flagged_site_ids: set[str], aoi_area: object, on: date | None = None
) -> gpd.GeoDataFrame:
    """Sites in the AOI whose title allows extraction (on ``on``) and carry no other flag.

    Rule ``compliant`` v1 (OECD DDG Step 2: no red flag for the site in the period).
    """
    ok = extraction_allowed(sites, on=on)
    return sites[ok & ~sites["site_id"].isin(flagged_site_ids) & sites.intersects(aoi_area)]
