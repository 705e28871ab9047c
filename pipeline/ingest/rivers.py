"""River centre lines for the ``turbidity_downstream`` rule (an AOI's ``inputs.rivers``).

A file of lines (GeoJSON, GeoPackage, Shapefile; e.g. RAISG's rivers affected by illegal
mining, ``boundaries/raisg_illegal_mining_rivers_2022.geojson``), each drawn from upstream to
downstream (``"direction": "reversed"`` when the file draws them the other way). Multi-part
lines become one row per part; parts that are not lines are refused with their row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from pipeline.core.errors import AoiError, DataNotFoundError
from pipeline.core.records import WGS84
from pipeline.ingest.vectors import read_vector

log = logging.getLogger(__name__)

#: ``inputs.rivers`` keys and their defaults (reach lengths in metres).
RIVER_DEFAULTS: dict[str, Any] = {
    "name_field": None,
    "direction": "as_drawn",
    "reach_m": 2000.0,
    "gap_m": 100.0,
    "max_offset_m": 500.0,
}
DIRECTIONS = ("as_drawn", "reversed")


def river_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``inputs.rivers`` with every default filled in (checked by ``aoi_inputs.check_inputs``)."""
    return {**RIVER_DEFAULTS, **{k: v for k, v in spec.items() if v is not None}}


def read_rivers(path: Path, *, spec: Mapping[str, Any], within: BaseGeometry, crs: CRS) -> gpd.GeoDataFrame:
    """The river lines of ``path`` near ``within`` (EPSG:4326), one row per part, in ``crs``.

    Parameters
    ----------
    spec
        ``inputs.rivers`` (:func:`river_spec`): ``name_field`` names the column read as the
        river's name; ``direction`` says how the lines are drawn; lines farther than
        ``max_offset_m`` from ``within`` are dropped.
    crs
        Projected CRS (m) the lines are returned in (the AOI's UTM zone).

    Returns
    -------
    gpd.GeoDataFrame
        ``river`` (name, or ``line <row>``), ``source_row``, LineString ``geometry`` oriented
        upstream to downstream, in ``crs``.

    Raises
    ------
    DataNotFoundError
        ``path`` does not exist.
    AoiError
        A feature that is not a line, or ``name_field`` not a column of the file.
    """
    spec = river_spec(spec)
    if not Path(path).exists():
        raise DataNotFoundError(f"River lines {path} do not exist. Fix inputs.rivers.path of the AOI.")
    frame = read_vector(Path(path), error=AoiError)
    field = spec["name_field"]
    if field is not None and field not in frame.columns:
        raise AoiError(
            f"{path}: inputs.rivers.name_field {field!r} is not a column; it has {sorted(frame.columns)}."
        )
    kinds = set(frame.geom_type.dropna())
    if not kinds <= {"LineString", "MultiLineString"}:
        bad = frame[~frame.geom_type.isin(["LineString", "MultiLineString"])]["source_row"].tolist()[:5]
        raise AoiError(f"{path}: river features must be lines; rows {bad} are {sorted(kinds)}. Fix the file.")
    names = frame[field].astype("string") if field is not None else None
    frame = frame.assign(river=[f"line {r}" for r in frame["source_row"]] if names is None else names)
    frame["river"] = frame["river"].fillna(frame["source_row"].map(lambda r: f"line {r}"))
    parts = frame[["river", "source_row", "geometry"]].explode(index_parts=False).reset_index(drop=True)
    parts = parts[~parts.geometry.is_empty & parts.geometry.notna()].to_crs(crs)
    area = gpd.GeoSeries([within], crs=WGS84).to_crs(crs).iloc[0].buffer(float(spec["max_offset_m"]))
    near = parts[parts.intersects(area)].copy()
    if spec["direction"] == "reversed":
        near["geometry"] = shapely.reverse(near.geometry.to_numpy())
    log.info("rivers %s: %d of %d line parts near the AOI", path, len(near), len(parts))
    return gpd.GeoDataFrame(near.reset_index(drop=True), geometry="geometry", crs=crs)
