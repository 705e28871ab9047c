"""Detection pieces -> findings: the geometry every area rule shares.

A *finding* is one row per problem with the offending footprint, hectares and detection ids
(``FINDING_COLUMNS``). All geometry here is in a metric CRS (the AOI's equal-area CRS), so
areas come out in m² and are reported in hectares. The helpers are shared so that every
area rule clips, dissolves and groups mining the same way, which is what lets the rules
partition it without gaps or double counts.
"""

from __future__ import annotations

import math

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from pipeline.core.records import WGS84

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


def cell_key(lon: float, lat: float, *, cell_deg: float) -> str:
    """Grid cell of a point (EPSG:4326 lon/lat, degrees), used to keep one flag id for
    mining that recurs nearby."""
    return f"{math.floor(lon / cell_deg)}:{math.floor(lat / cell_deg)}@{cell_deg:g}"


def empty_findings(crs: CRS | None) -> gpd.GeoDataFrame:
    """No findings, with the columns a rule returns, so callers can concatenate without checks."""
    return gpd.GeoDataFrame(columns=[*FINDING_COLUMNS, "geometry"], geometry="geometry", crs=crs)


def aggregate_findings(pieces: gpd.GeoDataFrame, *, rule_id: str, by: str) -> gpd.GeoDataFrame:
    """Group pieces (geometry in a metric CRS) into one finding per ``by`` value."""
    if pieces.empty:
        return empty_findings(pieces.crs)
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


def clip_pieces(detections: gpd.GeoDataFrame, mask: object, *, keep: bool = True) -> gpd.GeoDataFrame:
    """Pieces of detections inside (``keep``) or outside ``mask``; empty slivers dropped."""
    if mask is None:
        return detections.copy() if not keep else detections.iloc[:0].copy()
    out = detections.copy()
    out["geometry"] = detections.geometry.intersection(mask) if keep else detections.geometry.difference(mask)
    return out[~out.geometry.is_empty & (out.geometry.area > 0)]


def connected_parts(pieces: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
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


def part_cells(comps: gpd.GeoDataFrame, *, cell_deg: float) -> gpd.GeoDataFrame:
    """Grid cell of each part (its interior point), shared by all rows of the part."""
    if comps.empty:
        return comps.assign(cell=pd.Series(dtype=object))
    first = comps.drop_duplicates("part").set_index("part")
    points = gpd.GeoSeries(first.geometry, crs=comps.crs).representative_point().to_crs(WGS84)
    cells = {part: cell_key(p.x, p.y, cell_deg=cell_deg) for part, p in points.items()}
    return comps.assign(cell=comps["part"].map(cells))


def apportion_mined_area(findings: gpd.GeoDataFrame, detections: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Each finding's ``mined_area_ha``: every detection's own mined-area estimate (AMW's
    ``Mined area (ha)``) times the share of that detection's footprint inside the finding.

    A detection split between two titles, or between a title and the land outside, gives
    each piece its share, so the pieces add up to the detection's figure and never exceed it.
    Both frames in the same metric (equal-area) CRS; NaN stays NaN (no estimate given).
    """
    if findings.empty or "mined_area_ha" not in detections:
        return findings
    src = detections.drop_duplicates("detection_id").set_index("detection_id")
    src = src.set_geometry(src.geometry.make_valid())
    area = src.geometry.area
    out = findings.copy()
    values = []
    for ids, footprint in zip(out["detection_ids"], out.geometry, strict=True):
        total, known = 0.0, False
        for det_id in filter(None, str(ids or "").split(",")):
            mined = src["mined_area_ha"].get(det_id)
            if det_id not in src.index or mined is None or pd.isna(mined) or area[det_id] <= 0:
                continue
            share = src.geometry[det_id].intersection(footprint).area / area[det_id]
            total, known = total + float(mined) * min(share, 1.0), True
        values.append(total if known else float("nan"))
    out["mined_area_ha"] = values
    return out
