"""Cloud masks and the valid-fraction rule take effect in the nightly detection."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from pipeline.core.config import Settings
from pipeline.core.errors import NoDataError
from pipeline.core.records import Aoi
from pipeline.ingest.scenes import SceneSpec
from pipeline.ops.imagery import detect_from_scenes

BANDS = ("B02", "B03", "B04", "B08", "B11")
FOREST = {"B02": 300, "B03": 600, "B04": 300, "B08": 3500, "B11": 1500}
BARE = {"B02": 1200, "B03": 1500, "B04": 2000, "B08": 2300, "B11": 3200}
TRANSFORM = Affine(10, 0, 600_000, 0, -10, 9_850_000)
N = 80


def _write(path: Path, data: np.ndarray, names: tuple[str, ...]) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=N,
        height=N,
        count=len(names),
        dtype="uint16",
        crs="EPSG:32721",
        transform=TRANSFORM,
        nodata=0,
        tiled=True,
        blockxsize=32,
        blockysize=32,
    ) as dst:
        dst.write(data)
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
    return path


def _scene(tmp: Path, name: str, day: int, cloud: np.ndarray) -> SceneSpec:
    data = np.stack([np.full((N, N), FOREST[b], np.uint16) for b in BANDS])
    for i, b in enumerate(BANDS):
        data[i, 20:50, 20:50] = BARE[b]  # 9 ha of bare ground
    img = _write(tmp / f"{name}.tif", data, BANDS)
    clm = _write(tmp / f"{name}_clm.tif", cloud[None].astype(np.uint16), ("CLM",))
    return SceneSpec(
        scene_id=name,
        path=img,
        band_paths={"CLM": clm},
        datetime=datetime(2024, 7, day),
        scale=1e-4,
        offset=0.0,
    )


def _aoi() -> Aoi:
    import geopandas as gpd

    geom = gpd.GeoSeries([box(600_000, 9_850_000 - N * 10, 600_000 + N * 10, 9_850_000)], crs=32721)
    return Aoi(aoi_id="t", name="T", designation="reserve", country="BR", geometry=geom.to_crs(4326).iloc[0])


def _settings(tmp: Path) -> Settings:
    return Settings(sample_data=tmp, out_dir=tmp).with_overrides({"ingest": {"cloud_buffer_px": 0}})


def test_an_all_cloud_scene_is_skipped_and_the_clear_one_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clear = _scene(tmp_path, "a", 1, np.zeros((N, N)))
    cloudy = _scene(tmp_path, "b", 6, np.ones((N, N)))
    with caplog.at_level(logging.INFO, logger="pipeline.detect.clouds"):
        found, _ = detect_from_scenes(_aoi(), [clear, cloudy], settings=_settings(tmp_path), period=None)
    assert "skipping scene b" in caplog.text
    bare = found[found["kind"] == "mining_deforestation"]
    assert len(bare) == 1 and bare["area_ha"].iloc[0] == pytest.approx(9.0, rel=0.02)


def test_cloud_over_the_patch_hides_it(tmp_path: Path) -> None:
    cloud = np.zeros((N, N))
    cloud[15:55, 15:55] = 1  # covers the bare patch; 25 % of the AOI
    found, evidence = detect_from_scenes(
        _aoi(), [_scene(tmp_path, "a", 1, cloud)], settings=_settings(tmp_path), period=None
    )
    assert (found["kind"] != "mining_deforestation").all()
    assert evidence["valid_fraction"] == pytest.approx(1 - 0.25, abs=0.01)


def test_every_scene_cloudy_is_a_clear_no_data_outcome(tmp_path: Path) -> None:
    scenes = [_scene(tmp_path, "a", 1, np.ones((N, N))), _scene(tmp_path, "b", 6, np.ones((N, N)))]
    with pytest.raises(NoDataError, match=r"no usable scene.*min_valid_fraction"):
        detect_from_scenes(_aoi(), scenes, settings=_settings(tmp_path), period=None)
