"""Case 7: property-based tests (hypothesis).

* Random valid AOI polygons (convex, with holes, multipolygons; from ~100 m to ~150 km
  across, anywhere between 70 S and 70 N) go through the real path: GeoJSON file ->
  ``load_aoi`` -> the AOI's UTM grid -> rasterised tile by tile with random tile sizes ->
  ``vectorize_mask`` -> hectares in the AOI's equal-area CRS. The round trip keeps the
  geodesic area within the pixel-boundary error, and the tiles stitch without seams.
* Random dask chunk sizes over the real Trombetas scene give the same detections
  (geometry, hectares, statistics) as one whole-array chunk.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS, Transformer
from rasterio.features import rasterize
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box, mapping
from shapely.geometry.base import BaseGeometry

from pipeline.core.config import DetectParams
from pipeline.core.geometry import geodesic_area_km2
from pipeline.detect.scene_blocks import assemble_scene, scene_detections_sparse, scene_pieces
from pipeline.detect.vectorize import vectorize_mask
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.grid import GridSpec
from pipeline.ingest.scenes import LocalFolderSource, SceneSpec
from pipeline.ingest.training import sensor_bands
from pipeline.ops.imagery import SCENE_BANDS
from pipeline.state.models import load_turbidity_calibration

# ---- strategies ---------------------------------------------------------------------


@st.composite
def local_shapes(draw: st.DrawFn) -> BaseGeometry:
    """A valid shape in metres around (0, 0): convex, square with a hole, or two parts."""
    size = draw(st.sampled_from([100.0, 400.0, 3_000.0, 40_000.0, 150_000.0]))
    size *= draw(st.floats(0.6, 1.0))
    kind = draw(st.sampled_from(["convex", "holed", "multi"]))
    if kind == "convex":
        pts = draw(
            st.lists(
                st.tuples(st.floats(-0.5, 0.5), st.floats(-0.5, 0.5)), min_size=5, max_size=12, unique=True
            )
        )
        shape = Polygon([(x * size, y * size) for x, y in pts]).convex_hull
        if shape.geom_type != "Polygon" or shape.area < 0.05 * size * size:
            shape = box(-size / 2, -size / 3, size / 2, size / 3)
    elif kind == "holed":
        hole = draw(st.floats(0.1, 0.35)) * size
        shape = Polygon(
            [(-size / 2, -size / 2), (size / 2, -size / 2), (size / 2, size / 2), (-size / 2, size / 2)],
            [[(-hole, -hole), (-hole, hole), (hole, hole), (hole, -hole)]],
        )
    else:
        gap = draw(st.floats(0.05, 0.3)) * size
        shape = MultiPolygon(
            [box(-size / 2, -size / 2, -gap / 2, size / 2), box(gap / 2, -size / 4, size / 2, size / 4)]
        )
    return affinity.rotate(shape, draw(st.floats(0, 90)), origin=(0, 0))


def _to_lonlat(shape: BaseGeometry, lon: float, lat: float) -> BaseGeometry:
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    to_wgs = Transformer.from_crs(laea, 4326, always_xy=True)
    # densify first: a 150 km edge drawn straight in lon/lat is not straight on the ground
    return shapely.transform(
        shape.segmentize(max(shape.length / 400, 10.0)), to_wgs.transform, interleaved=False
    )


def _aoi_file(folder: Path, geom: BaseGeometry) -> Path:
    doc = {
        "type": "Feature",
        "properties": {"aoi_id": "prop", "name": "P", "designation": "reserve", "country": "XX"},
        "geometry": mapping(geom),
    }
    path = folder / "prop.geojson"
    path.write_text(json.dumps(doc))
    return path


def _rasterise_in_tiles(geom: BaseGeometry, grid: GridSpec, tile: tuple[int, int]) -> np.ndarray:
    """Burn ``geom`` (grid CRS) tile by tile, each tile with its own window transform."""
    out = np.zeros((grid.height, grid.width), dtype=bool)
    t = grid.transform
    for r0 in range(0, grid.height, tile[0]):
        for c0 in range(0, grid.width, tile[1]):
            h, w = min(tile[0], grid.height - r0), min(tile[1], grid.width - c0)
            win_t = t * t.translation(c0, r0)
            out[r0 : r0 + h, c0 : c0 + w] = (
                rasterize([(geom, 1)], out_shape=(h, w), transform=win_t, fill=0) > 0
            )
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=local_shapes(),
    lon=st.floats(-170.0, 170.0),
    lat=st.floats(-70.0, 70.0),
    tile=st.tuples(st.integers(7, 300), st.integers(7, 300)),
)
def test_aoi_utm_tiles_vectorise_round_trip_keeps_the_area(
    shape: BaseGeometry, lon: float, lat: float, tile: tuple[int, int], sample_data: Path
) -> None:
    geom = _to_lonlat(shape, lon, lat)
    with tempfile.TemporaryDirectory() as tmp:
        aoi = load_aoi(_aoi_file(Path(tmp), geom), sample_data=sample_data)
    true_ha = geodesic_area_km2(aoi.geometry) * 100
    assert true_ha == pytest.approx(shape.area / 1e4, rel=2e-3)  # the file kept the shape

    utm = aoi.utm_crs
    in_utm = aoi.to_frame().to_crs(utm).geometry.iloc[0]
    extent = max(in_utm.bounds[2] - in_utm.bounds[0], in_utm.bounds[3] - in_utm.bounds[1])
    res = extent / 160
    grid = GridSpec.covering(in_utm.bounds, crs=utm, resolution=(res, res))
    mask = _rasterise_in_tiles(in_utm, grid, tile)
    whole = rasterize([(in_utm, 1)], out_shape=(grid.height, grid.width), transform=grid.transform) > 0
    np.testing.assert_array_equal(mask, whole)  # tiles stitch without a seam

    polys = vectorize_mask(
        mask, transform=grid.transform, crs=utm, area_crs=aoi.equal_area_crs, min_area_ha=0.0
    )
    got_ha = float(polys["area_ha"].sum())
    assert int(polys["n_pixels"].sum()) == int(mask.sum())
    # pixel-boundary error: at most about half a pixel along the whole outline, plus the
    # UTM scale error of a large AOI far from its central meridian
    perimeter = float(in_utm.length)
    tol_ha = (perimeter * res * 0.75 + res * res * 4) / 1e4 + true_ha * 2e-3
    assert abs(got_ha - true_ha) <= tol_ha, (got_ha, true_ha, tol_ha)
    assert polys.crs.to_epsg() == 4326


# ---- chunking -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trombetas_cube(aoi_dir: Path, sample_data: Path) -> tuple[Any, Any, Any]:
    aoi = load_aoi(aoi_dir / "trombetas.geojson", sample_data=sample_data)
    scenes = [SceneSpec.from_mapping(e, root=sample_data) for e in aoi.inputs["scenes"]]
    cube = LocalFolderSource(scenes).load(aoi, None, bands=SCENE_BANDS)
    cube = cube.rename({v: k for k, v in sensor_bands("sentinel2").items() if v in cube})
    with dask.config.set(scheduler="synchronous"):
        return aoi, cube.compute(), _detect(cube.chunk({"y": -1, "x": -1}), aoi)


def _detect(cube: Any, aoi: Any) -> pd.DataFrame:
    params = DetectParams()
    with dask.config.set(scheduler="synchronous"):
        (pieces,) = dask.compute(
            scene_pieces(cube, params=params, model=None, calibration=load_turbidity_calibration())
        )
    found = scene_detections_sparse(
        assemble_scene(pieces),
        transform=cube.rio.transform(),
        crs=cube.rio.crs,
        area_crs=aoi.equal_area_crs,
        min_area_ha=params.min_area_ha,
    )
    return found.assign(wkb=found.geometry.to_wkb()).sort_values("wkb").reset_index(drop=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cy=st.integers(5, 240), cx=st.integers(5, 250))
def test_random_chunk_sizes_give_identical_detections(
    trombetas_cube: tuple[Any, Any, Any], cy: int, cx: int
) -> None:
    aoi, cube, expected = trombetas_cube
    assert len(expected) > 3  # the real scene has clearings and river: not vacuous
    got = _detect(cube.chunk({"y": cy, "x": cx}), aoi)
    assert list(got["wkb"]) == list(expected["wkb"])  # same polygons, bit for bit
    pd.testing.assert_frame_equal(
        pd.DataFrame(got.drop(columns=["geometry", "wkb"])),
        pd.DataFrame(expected.drop(columns=["geometry", "wkb"])),
        check_exact=False,
        rtol=1e-9,
    )
