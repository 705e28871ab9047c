"""Issue 17, item 3: L1C scenes (no SCL, no CLM) are cloud-masked by s2cloudless in the run
path. The scene is written as TOA reflectance in the 10 bands s2cloudless reads, with a block
of bright cloud over forest; the masked pixels are exactly the cloud (plus its buffer), and a
scene that is all cloud is skipped by ``min_valid_fraction``."""

from __future__ import annotations

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
from pipeline.detect.clouds import S2CLOUDLESS_BANDS
from pipeline.ingest.scenes import SceneSpec
from pipeline.ops.imagery import clear_observations

L1C = (*S2CLOUDLESS_BANDS, "B03")
#: TOA reflectance of forest and of thick cloud in each band (s2cloudless: 0.04 vs 0.997).
FOREST = dict(zip(L1C, (0.12, 0.09, 0.05, 0.08, 0.30, 0.32, 0.10, 0.002, 0.15, 0.07, 0.07), strict=True))
CLOUD = dict(zip(L1C, (0.55, 0.55, 0.55, 0.56, 0.58, 0.58, 0.30, 0.03, 0.40, 0.30, 0.55), strict=True))
TRANSFORM = Affine(10, 0, 600_000, 0, -10, 9_850_000)
N = 80


def _scene(tmp: Path, name: str, day: int, cloud: np.ndarray) -> SceneSpec:
    data = np.stack([np.where(cloud, CLOUD[b], FOREST[b]) * 10_000 for b in L1C]).astype(np.uint16)
    path = tmp / f"{name}.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=N, height=N, count=len(L1C), dtype="uint16", crs="EPSG:32721",
        transform=TRANSFORM, nodata=0, tiled=True, blockxsize=32, blockysize=32,
    ) as dst:  # fmt: skip
        dst.write(data)
        for i, band in enumerate(L1C, start=1):
            dst.set_band_description(i, band)
    return SceneSpec(scene_id=name, path=path, datetime=datetime(2024, 7, day), scale=1e-4, offset=0.0)


def _aoi() -> Aoi:
    import geopandas as gpd

    geom = gpd.GeoSeries([box(600_000, 9_850_000 - N * 10, 600_000 + N * 10, 9_850_000)], crs=32721)
    return Aoi(aoi_id="t", name="T", designation="reserve", country="BR", geometry=geom.to_crs(4326).iloc[0])


def _settings(tmp: Path, buffer_px: int = 0) -> Settings:
    return Settings(sample_data=tmp, out_dir=tmp).with_overrides({"ingest": {"cloud_buffer_px": buffer_px}})


@pytest.mark.parametrize("buffer_px", [0, 3])
def test_s2cloudless_masks_the_cloud_of_an_l1c_scene(tmp_path: Path, buffer_px: int) -> None:
    cloud = np.zeros((N, N), bool)
    cloud[20:40, 30:60] = True
    cube = clear_observations(
        _aoi(), [_scene(tmp_path, "a", 1, cloud)], settings=_settings(tmp_path, buffer_px), period=None,
        bands=("B02", "B03", "B04", "B08", "B11"),
    )  # fmt: skip
    masked = np.isnan(cube["B04"].isel(time=0).values)
    # the cloud is masked (s2cloudless smooths over a 4 px disk: its edge may spread a little)
    assert masked[cloud].mean() > 0.95
    grown = np.zeros_like(cloud)
    r = 4 + buffer_px + 1
    grown[20 - r : 40 + r, 30 - r : 60 + r] = True
    assert not masked[~grown].any()  # forest away from the cloud is kept
    assert masked.sum() >= cloud.sum() + (2 * buffer_px * 20 if buffer_px else 0)


def test_an_all_cloud_l1c_scene_is_skipped(tmp_path: Path) -> None:
    clear = _scene(tmp_path, "a", 1, np.zeros((N, N), bool))
    cloudy = _scene(tmp_path, "b", 6, np.ones((N, N), bool))
    cube = clear_observations(_aoi(), [clear, cloudy], settings=_settings(tmp_path), period=None)
    assert list(cube["scene_id"].values) == ["a"]
    with pytest.raises(NoDataError, match="min_valid_fraction"):
        clear_observations(_aoi(), [cloudy], settings=_settings(tmp_path), period=None)
