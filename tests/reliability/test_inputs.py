"""Cases 2 and 3 not already covered elsewhere: scenes of mixed resolutions, and registry
files that are not UTF-8 (refused with the line and the fix, read right when the encoding
is given; never turned into replacement characters)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from pipeline.cli.main import main
from pipeline.core.errors import RegistryError
from pipeline.core.records import Aoi
from pipeline.ingest.scenes import LocalFolderSource, SceneSpec
from pipeline.ingest.vectors import read_registry

UTM = "EPSG:32721"
AOI = Aoi(
    aoi_id="mixed",
    name="mixed",
    designation="test",
    country="BR",
    geometry=gpd.GeoSeries([box(600500, 9899000, 601500, 9899500)], crs=UTM).to_crs(4326).iloc[0],
)


def _tif(path: Path, data: np.ndarray, res: float) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype.name, crs=UTM, transform=Affine(res, 0, 600000, 0, -res, 9900000), nodata=0,
    ) as dst:  # fmt: skip
        dst.write(data)
        dst.descriptions = ("B04", "B08")
    return path


def test_scenes_of_mixed_resolution_land_on_one_grid_without_shifting(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    fine = rng.integers(1, 10000, (2, 300, 300), dtype=np.uint16)  # 10 m
    coarse = rng.integers(1, 10000, (2, 150, 150), dtype=np.uint16)  # 20 m, same footprint
    scenes = [
        SceneSpec(scene_id="s10", path=_tif(tmp_path / "a.tif", fine, 10.0), datetime=datetime(2021, 1, 1)),
        SceneSpec(scene_id="s20", path=_tif(tmp_path / "b.tif", coarse, 20.0), datetime=datetime(2021, 2, 1)),
    ]
    cube = LocalFolderSource(scenes).load(AOI, None, bands=["B04", "B08"]).compute()
    assert cube.rio.crs == UTM and cube.rio.resolution() == (10.0, -10.0)
    x, y = cube["x"].values, cube["y"].values
    # independent reference: the pixel of each file under each grid-cell centre
    cols10, rows10 = ((x - 600000) // 10).astype(int), ((9900000 - y) // 10).astype(int)
    cols20, rows20 = ((x - 600000) // 20).astype(int), ((9900000 - y) // 20).astype(int)
    for k, band in enumerate(["B04", "B08"]):
        want = fine[k][np.ix_(rows10, cols10)] / 10000.0
        np.testing.assert_allclose(np.asarray(cube[band].isel(time=0)), want, rtol=1e-6)
        got20 = cube[band].isel(time=1)
        np.testing.assert_allclose(np.asarray(got20), coarse[k][np.ix_(rows20, cols20)] / 10000.0, rtol=1e-6)


HEADER = "site_id,name,operator,licence_status,licence_valid_from,licence_valid_to,mineral,lon,lat,radius_m\n"
ROW = (
    "S1,Mineração São João,Cooperativa Garimpeira Ouro Fino,active,2020-01-01,2030-12-31,ouro,-51.5,2.5,300\n"
)


def test_latin1_registry_is_refused_with_the_line_then_read_with_its_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sites.csv"
    path.write_bytes((HEADER + ROW).encode("latin-1"))
    assert main(["sites", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "is not utf-8 text: byte 0xe7 on line 2" in err and "--encoding" in err
    assert main(["sites", "validate", str(path), "--encoding", "latin-1"]) == 0
    assert "rows read: 1" in capsys.readouterr().out
    frame = read_registry(path, fmt="native", encoding="latin-1")
    assert frame.loc[0, "name"] == "Mineração São João"


def test_invalid_bytes_in_a_geojson_registry_are_refused(tmp_path: Path) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"site_id": "S1", "name": "Mina ??"},
                "geometry": {"type": "Point", "coordinates": [-51.5, 2.5]},
            }
        ],
    }
    path = tmp_path / "sites.geojson"
    path.write_bytes(json.dumps(doc).encode().replace(b"??", b"\xff\xfe"))
    with pytest.raises(RegistryError, match=r"not utf-8 text: byte 0xff on line 1.*iconv"):
        read_registry(path, fmt="native")


def test_utf8_with_bom_and_non_latin_names_read_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "sites.csv"
    row2 = "S2,Шахта 金矿 <b>x</b>,Op,active,,,gold,-51.6,2.5,200\n"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + ROW + row2).encode("utf-8"))
    frame = read_registry(path, fmt="native")
    assert list(frame["site_id"]) == ["S1", "S2"]  # the BOM is not part of the first column name
    assert list(frame["name"]) == ["Mineração São João", "Шахта 金矿 <b>x</b>"]
