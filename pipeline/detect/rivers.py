"""Per-site river turbidity: median FNU in a reach upstream and downstream of each site.

The river is the connected water body (from the water mask) nearest to the site. Position
along the river comes either from a river centre line digitised in the flow direction
(``shapely.line_locate_point``; follows meanders) or, without one, from a straight flow
direction (azimuth, degrees clockwise from north; adequate for reaches shorter than the
river's bends). Pixels within ``gap_m`` of the site are skipped on both sides so the
site's own plume edge does not count as upstream. The output feeds
:func:`pipeline.comply.rules.turbidity_downstream`.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from shapely.geometry import LineString, Point

from pipeline.core.errors import ConfigError, RasterError

RIVER_STATS_COLUMNS = ["site_id", "upstream_fnu", "downstream_fnu", "upstream_px", "downstream_px"]


def reach_turbidity(
    fnu: np.ndarray,
    water: np.ndarray,
    sites: gpd.GeoDataFrame,
    *,
    transform: Affine,
    crs: CRS,
    reach_m: float = 2000.0,
    gap_m: float = 100.0,
    max_offset_m: float = 500.0,
    flow_azimuth_deg: float | None = None,
    river: LineString | None = None,
    site_id: str = "site_id",
) -> pd.DataFrame:
    """Median turbidity upstream and downstream of each site along its river.

    Parameters
    ----------
    fnu, water
        Computed 2-D ``(y, x)`` arrays on the grid ``transform`` / ``crs``: turbidity (FNU,
        NaN where no retrieval) and the boolean water mask.
    sites
        Mine sites (points or polygons; the representative point is used), any CRS.
    crs
        Projected CRS in metres (the AOI's UTM zone); geographic CRSs are refused.
    reach_m, gap_m
        Reach length each side of the site, and the skipped stretch next to it (m).
    max_offset_m
        A site farther than this from any water pixel (or from ``river``) gets NaN.
    flow_azimuth_deg, river
        Flow direction: a river line in ``crs`` drawn from upstream to downstream, or a
        constant azimuth. Exactly one is required.

    Returns
    -------
    pd.DataFrame
        ``site_id``, ``upstream_fnu``, ``downstream_fnu`` (medians, FNU; NaN when a reach
        has no valid pixel), ``upstream_px``, ``downstream_px``.
    """
    if (flow_azimuth_deg is None) == (river is None):
        raise ConfigError("Give exactly one of flow_azimuth_deg or river to orient the reaches.")
    crs = CRS.from_user_input(crs)
    if not crs.is_projected:
        raise RasterError(
            f"reach_turbidity needs a projected CRS in metres, got {crs.name}. Reproject to UTM."
        )
    grid = _WaterPixels.of(fnu, water, transform=transform, river=river)
    out = []
    for sid, geom in zip(sites[site_id], sites.to_crs(crs).geometry.representative_point(), strict=True):
        row: dict[str, object] = {"site_id": sid}
        sides = _reaches(
            grid,
            geom,
            reach_m=reach_m,
            gap_m=gap_m,
            max_offset_m=max_offset_m,
            flow_azimuth_deg=flow_azimuth_deg,
            river=river,
        )
        for side, sel in sides.items():
            v = grid.fnu[sel]
            v = v[np.isfinite(v)]
            row[f"{side}_px"] = int(v.size)
            row[f"{side}_fnu"] = float(np.median(v)) if v.size else np.nan
        out.append(row)
    frame = pd.DataFrame(out, columns=RIVER_STATS_COLUMNS)
    return frame.fillna({"upstream_px": 0, "downstream_px": 0}).astype(
        {"upstream_px": int, "downstream_px": int, "upstream_fnu": float, "downstream_fnu": float}
    )


@dataclass(frozen=True)
class _WaterPixels:
    """The water pixels of a grid: map coordinates, water-body label, FNU and, with a river
    line, their position along it and distance from it (m)."""

    xs: np.ndarray
    ys: np.ndarray
    body: np.ndarray
    fnu: np.ndarray
    along_river: np.ndarray | None
    off_river: np.ndarray | None

    @classmethod
    def of(
        cls, fnu: np.ndarray, water: np.ndarray, *, transform: Affine, river: LineString | None
    ) -> _WaterPixels:
        fnu = np.asarray(fnu, dtype=np.float64)
        water = np.asarray(water, dtype=bool)
        if fnu.shape != water.shape or fnu.ndim != 2:
            raise RasterError(f"fnu {fnu.shape} and water {water.shape} must be the same 2-D grid.")
        labels, _ = ndimage.label(water, structure=np.ones((3, 3), dtype=int))
        rows, cols = np.nonzero(water)
        # affine maps (col, row) pixel-centre offsets to map x / y
        xs = transform.c + (cols + 0.5) * transform.a + (rows + 0.5) * transform.b
        ys = transform.f + (cols + 0.5) * transform.d + (rows + 0.5) * transform.e
        along = off = None
        if river is not None:
            points = shapely.points(xs, ys)
            along, off = shapely.line_locate_point(river, points), shapely.distance(points, river)
        return cls(xs, ys, labels[rows, cols], fnu[rows, cols], along, off)


def _reaches(
    grid: _WaterPixels,
    site: Point,
    *,
    reach_m: float,
    gap_m: float,
    max_offset_m: float,
    flow_azimuth_deg: float | None,
    river: LineString | None,
) -> dict[str, np.ndarray]:
    """Boolean selections of ``grid``'s pixels upstream and downstream of ``site`` on the
    same water body; empty when the site is farther than ``max_offset_m`` from the water."""
    if len(grid.xs) == 0:
        return {}
    dx, dy = grid.xs - site.x, grid.ys - site.y
    d2 = dx**2 + dy**2
    nearest = int(np.argmin(d2))
    if d2[nearest] > max_offset_m**2:
        return {}
    same = grid.body == grid.body[nearest]
    if river is not None:
        assert grid.along_river is not None and grid.off_river is not None
        if river.distance(site) > max_offset_m:
            return {}
        along = grid.along_river - river.project(site)
        near = same & (grid.off_river <= max_offset_m)
    else:
        assert flow_azimuth_deg is not None
        az = np.deg2rad(flow_azimuth_deg)
        along = dx * np.sin(az) + dy * np.cos(az)
        near = same & (np.abs(-dx * np.cos(az) + dy * np.sin(az)) <= reach_m)
    return {
        "upstream": near & (along < -gap_m) & (along >= -reach_m),
        "downstream": near & (along > gap_m) & (along <= reach_m),
    }
