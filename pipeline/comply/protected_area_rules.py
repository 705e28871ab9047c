"""The rule that needs only the AOI: mining inside a protected area or territory."""

from __future__ import annotations

import geopandas as gpd
from pyproj import CRS

from pipeline.comply.findings import (
    aggregate_findings,
    apportion_mined_area,
    clip_pieces,
    connected_parts,
    empty_findings,
    part_cells,
)
from pipeline.core.config import ComplyParams
from pipeline.core.records import WGS84, Aoi


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
        return empty_findings(detections.crs)
    area = gpd.GeoSeries([aoi.geometry], crs=WGS84).to_crs(crs).iloc[0]
    parts = part_cells(connected_parts(clip_pieces(detections, area)), cell_deg=params.footprint_cell_deg)
    found = aggregate_findings(parts.assign(site_id=None), rule_id="mining_in_protected_area", by="cell")
    return apportion_mined_area(found, detections)
