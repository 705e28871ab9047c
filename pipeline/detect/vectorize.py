"""Connected components of a mask -> polygons with area (ha) and evidence statistics."""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from shapely.geometry import shape

from pipeline.records import WGS84


def vectorize_mask(
    mask: np.ndarray,
    *,
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float,
    stats: Mapping[str, np.ndarray] | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of the 8-connected components of ``mask``.

    Parameters
    ----------
    mask
        2-D boolean array ``(y, x)`` on the grid given by ``transform`` / ``crs``.
    area_crs
        Equal-area (or UTM) CRS in metres where ``area_ha`` is measured; never degrees.
    min_area_ha
        Minimum mapping unit; smaller components are dropped.
    stats
        Arrays on the same grid; each gives ``mean_<name>`` and ``median_<name>`` columns
        (NaN-aware; the median resists the saturated pixels of a retrieval).

    Returns
    -------
    GeoDataFrame
        EPSG:4326, columns ``component``, ``area_ha``, ``n_pixels``, ``mean_*``, geometry.
    """
    mask = np.asarray(mask, dtype=bool)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    columns = ["component", "area_ha", "n_pixels"]
    for k in stats or {}:
        columns += [f"mean_{k}", f"median_{k}"]
    if count == 0:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=WGS84)
    index = np.arange(1, count + 1)
    n_pixels = ndimage.sum_labels(mask, labels, index).astype(int)
    geoms: dict[int, list] = {}
    for geom, value in rasterio.features.shapes(
        labels.astype(np.int32), mask=mask, transform=transform, connectivity=8
    ):
        geoms.setdefault(int(value), []).append(shape(geom))
    polys = [gpd.GeoSeries(geoms[i]).union_all() for i in index]
    frame = gpd.GeoDataFrame({"component": index, "n_pixels": n_pixels}, geometry=polys, crs=crs)
    frame["area_ha"] = frame.to_crs(area_crs).area.to_numpy() / 1e4
    for name, values in (stats or {}).items():
        arr = np.asarray(values, dtype=np.float64)
        valid = ~np.isnan(arr)
        sums = ndimage.sum_labels(np.where(valid, arr, 0.0), labels, index)
        counts = ndimage.sum_labels(valid, labels, index)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"mean_{name}"] = np.where(counts > 0, sums / counts, np.nan)
        per_label = pd.Series(arr[valid & mask]).groupby(labels[valid & mask]).median()
        frame[f"median_{name}"] = per_label.reindex(index).to_numpy()
    frame = frame[frame["area_ha"] >= min_area_ha]
    return frame.to_crs(WGS84)[[*columns, "geometry"]].reset_index(drop=True)
