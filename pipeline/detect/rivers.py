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

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from shapely.geometry import LineString

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
    fnu = np.asarray(fnu, dtype=np.float64)
    water = np.asarray(water, dtype=bool)
    if fnu.shape != water.shape or fnu.ndim != 2:
        raise RasterError(f"fnu {fnu.shape} and water {water.shape} must be the same 2-D grid.")
    labels, _ = ndimage.label(water, structure=np.ones((3, 3), dtype=int))
    rows, cols = np.nonzero(water)
    # affine maps (col, row) pixel-centre offsets to map x / y
    xs = transform.c + (cols + 0.5) * transform.a + (rows + 0.5) * transform.b
    ys = transform.f + (cols + 0.5) * transform.d + (rows + 0.5) * transform.e
    points = shapely.points(xs, ys) if river is not None else None
    along_px = shapely.line_locate_point(river, points) if river is not None else None
    off_line = shapely.distance(points, river) if river is not None else None
    local = sites.to_crs(crs)
    out = []
    for sid, geom in zip(local[site_id], local.geometry.representative_point(), strict=True):
        row = {
            "site_id": sid,
            "upstream_fnu": np.nan,
            "downstream_fnu": np.nan,
            "upstream_px": 0,
            "downstream_px": 0,
        }
        out.append(row)
        if len(xs) == 0:
            continue
        d2 = (xs - geom.x) ** 2 + (ys - geom.y) ** 2
        nearest = int(np.argmin(d2))
        if d2[nearest] > max_offset_m**2:
            continue
        same = labels[rows, cols] == labels[rows[nearest], cols[nearest]]
        if river is not None:
            assert along_px is not None and off_line is not None
            if river.distance(geom) > max_offset_m:
                continue
            along = along_px - river.project(geom)
            near = same & (off_line <= max_offset_m)
        else:
            assert flow_azimuth_deg is not None
            az = np.deg2rad(flow_azimuth_deg)
            along = (xs - geom.x) * np.sin(az) + (ys - geom.y) * np.cos(az)
            across = np.abs(-(xs - geom.x) * np.cos(az) + (ys - geom.y) * np.sin(az))
            near = same & (across <= reach_m)
        values = fnu[rows, cols]
        for side, sel in (
            ("upstream", near & (along < -gap_m) & (along >= -reach_m)),
            ("downstream", near & (along > gap_m) & (along <= reach_m)),
        ):
            v = values[sel]
            v = v[np.isfinite(v)]
            row[f"{side}_px"] = int(v.size)
            row[f"{side}_fnu"] = float(np.median(v)) if v.size else np.nan
    return pd.DataFrame(out, columns=RIVER_STATS_COLUMNS)
