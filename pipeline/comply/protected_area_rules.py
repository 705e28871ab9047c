"""The rule that needs only the AOI: mining inside a protected area or territory, with a
severity from the area's protection category, and its combination with the title rules.

Severity (rule ``mining_in_protected_area`` v2): ``high`` in areas of strict protection
(Brazil's *proteção integral*, PI) and indigenous territories, where no mining is lawful;
``medium`` in sustainable-use areas (*uso sustentável*, US, e.g. a state forest), where
mining can be lawful under the area's management plan and a title that allows extraction;
``high`` when the category is not given.

Said once, not twice: where mining inside the protected area is also a title finding
(inside a title that does not allow extraction, outside its title, or with no title that
allows it), that title flag carries the protected-area finding too (``also_rule``: both
sentences, both clauses, the higher severity) and the protected-area flag keeps only the
rest of the mining.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from pipeline.comply.findings import (
    aggregate_findings,
    apportion_mined_area,
    clip_pieces,
    connected_parts,
    empty_findings,
    part_cells,
)
from pipeline.comply.rulebook import RULES
from pipeline.core.config import ComplyParams
from pipeline.core.records import WGS84, Aoi

RULE_ID = "mining_in_protected_area"
#: Severity of mining inside an area of each protection category (None: not given).
SEVERITY_BY_PROTECTION: dict[str | None, str] = {
    "strict": "high",
    "indigenous": "high",
    "sustainable_use": "medium",
    None: "high",
}
_ORDER = {"info": 0, "low": 1, "medium": 2, "high": 3}


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
    found = aggregate_findings(parts.assign(site_id=None), rule_id=RULE_ID, by="cell")
    found = found.assign(severity=SEVERITY_BY_PROTECTION.get(aoi.protection, "high"))
    return apportion_mined_area(found, detections)


def absorb_title_findings(
    protected: gpd.GeoDataFrame,
    titles: list[gpd.GeoDataFrame],
    *,
    detections: gpd.GeoDataFrame,
    aoi: Aoi,
) -> tuple[gpd.GeoDataFrame, list[gpd.GeoDataFrame]]:
    """Say each piece of mining once: title findings inside the protected area take the
    protected-area finding on (``also_rule``, the higher severity) and the protected-area
    findings lose the mining those title findings cover. All frames in the same metric CRS."""
    live = [t for t in titles if len(t)]
    if protected.empty or not live:
        return protected, titles
    severity = SEVERITY_BY_PROTECTION.get(aoi.protection, "high")
    claimed = gpd.GeoSeries(pd.concat([t.geometry for t in live]), crs=protected.crs).union_all()
    out_titles = []
    for frame in titles:
        if frame.empty:
            out_titles.append(frame)
            continue
        inside = frame.intersects(protected.geometry.union_all()).to_numpy()
        own = frame["severity"] if "severity" in frame else frame["rule_id"].map(lambda r: RULES[r].severity)
        higher = [s if _ORDER[s] >= _ORDER[severity] else severity for s in own]
        out_titles.append(
            frame.assign(
                also_rule=[RULE_ID if k else None for k in inside],
                severity=[h if k else s for h, s, k in zip(higher, own, inside, strict=True)],
            )
        )
    rest = protected.assign(geometry=protected.geometry.difference(claimed))
    rest = rest[~rest.geometry.is_empty & (rest.geometry.area > 0)]
    rest = rest.assign(area_ha=rest.geometry.area / 1e4)
    rest = rest.assign(detection_ids=[_ids_within(g, detections) for g in rest.geometry])
    return apportion_mined_area(rest, detections), out_titles


def _ids_within(geom: object, detections: gpd.GeoDataFrame) -> str:
    """The detections that still touch a protected-area piece after the title pieces left."""
    hits = detections.iloc[detections.sindex.query(geom, predicate="intersects")]
    return ",".join(sorted(set(map(str, hits["detection_id"]))))
