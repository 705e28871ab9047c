"""Before/after image chips in flag popups, from a real (synthetic) two-date scene pair."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from pipeline.core.config import Settings
from pipeline.core.records import Aoi
from pipeline.ops.aoi_run import run_aoi
from pipeline.report.chips import chip_data_uri

PIL = pytest.importorskip("PIL.Image")
BANDS = ("B02", "B03", "B04", "B08", "B11")
FOREST = {"B02": 300, "B03": 600, "B04": 300, "B08": 3500, "B11": 1500}
BARE = {"B02": 1200, "B03": 1500, "B04": 2400, "B08": 2600, "B11": 3400}
N = 80
TRANSFORM = Affine(10, 0, 600_000, 0, -10, 9_850_000)


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(PIL.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_png_encoding_round_trips() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.uniform(0, 0.3, (17, 23, 3)).astype(np.float32)
    img = _decode(chip_data_uri(rgb, scale=(0.0, 0.3)))
    assert img.shape == (17, 23, 3)
    np.testing.assert_allclose(img, np.clip(rgb / 0.3 * 255, 0, 255).astype(np.uint8), atol=1)


def _scene(tmp: Path, name: str, bare: bool) -> str:
    data = np.stack([np.full((N, N), FOREST[b], np.uint16) for b in BANDS])
    if bare:
        for i, b in enumerate(BANDS):
            data[i, 25:55, 25:55] = BARE[b]  # 9 ha cleared
    path = tmp / f"{name}.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=N, height=N, count=5, dtype="uint16",
        crs="EPSG:32721", transform=TRANSFORM, nodata=0,
    ) as dst:  # fmt: skip
        dst.write(data)
        for i, b in enumerate(BANDS, start=1):
            dst.set_band_description(i, b)
    return str(path)


def test_flag_popup_shows_forest_before_and_bare_ground_after(tmp_path: Path) -> None:
    scenes = [
        {
            "path": _scene(tmp_path, "a", False),
            "scene_id": "a",
            "datetime": "2024-06-01",
            "scale": 1e-4,
            "offset": 0.0,
        },
        {
            "path": _scene(tmp_path, "b", True),
            "scene_id": "b",
            "datetime": "2024-08-01",
            "scale": 1e-4,
            "offset": 0.0,
        },
    ]
    geom = gpd.GeoSeries([box(600_000, 9_850_000 - N * 10, 600_000 + N * 10, 9_850_000)], crs=32721)
    aoi = Aoi(
        aoi_id="reserve", name="Reserve", designation="reserve", country="BR", protected=True,
        geometry=geom.to_crs(4326).iloc[0], inputs={"scenes": scenes},
    )  # fmt: skip
    settings = Settings(sample_data=tmp_path, out_dir=tmp_path / "out").with_overrides(
        # five-band synthetic scenes: the index-rules path (the gold detector also reads B12)
        {"run": {"scheduler": "threads"}, "detect": {"change_confirm_after": 0, "detector": "index-rules"}}
    )
    result = run_aoi(aoi, settings=settings, period=None, out_dir=tmp_path / "out")
    flags = gpd.read_parquet(tmp_path / "out" / "reserve" / "flags.parquet")
    assert result.status == "ok" and (flags["rule_id"] == "mining_in_protected_area").any()
    html = (tmp_path / "out" / "reserve" / "map.html").read_text()
    # the chips inside flag popups (Leaflet's own icons are data URIs too)
    blocks = re.findall(r"asm-chips(.*?)/div", html)
    uris = [u for block in blocks for u in re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]+", block)]
    assert len(uris) == 2 * int((flags["rule_id"] != "compliant").sum())
    before, after = _decode(uris[0]), _decode(uris[1])
    cy, cx = before.shape[0] // 2, before.shape[1] // 2
    b, a = before[cy, cx].astype(int), after[cy, cx].astype(int)
    assert b[1] > b[0]  # forest: green over red
    assert a[0] > a[1] and a.sum() > b.sum()  # bare ground: red over green, brighter
    assert "2024-06-01" in html and "2024-08-01" in html
