from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.errors import AoiError
from pipeline.ingest.aoi import list_aoi_files, load_aoi

SQUARE = [[[-56.0, -6.0], [-55.9, -6.0], [-55.9, -5.9], [-56.0, -5.9], [-56.0, -6.0]]]


def _aoi(tmp_path: Path, *, geometry: Any = None, **props: Any) -> Path:
    doc: dict[str, Any] = {
        "type": "Feature",
        "properties": {"aoi_id": "t1", "name": "T", "designation": "reserve", "country": "BR", **props},
        "geometry": geometry if geometry is not None else {"type": "Polygon", "coordinates": SQUARE},
    }
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps(doc))
    return path


def test_bundled_aois_load(aoi_dir: Path, sample_data: Path) -> None:
    ids = {load_aoi(p, sample_data=sample_data).aoi_id for p in list_aoi_files(aoi_dir)}
    assert {"trombetas", "amapa-gold", "munduruku"} <= ids


def test_munduruku_geometry_comes_from_the_shared_boundary(aoi_dir: Path, sample_data: Path) -> None:
    aoi = load_aoi(aoi_dir / "munduruku.geojson", sample_data=sample_data)
    # the real territory is ~2.38 million ha (FUNAI); its outline here gives about that
    assert 22_000 < aoi.area_km2 < 25_000
    assert aoi.utm_crs.to_epsg() == 32721
    assert aoi.protected


def test_small_aoi_utm_and_area(tmp_path: Path, sample_data: Path) -> None:
    aoi = load_aoi(_aoi(tmp_path), sample_data=sample_data)
    assert aoi.utm_crs.to_epsg() == 32721
    # 0.1 deg x 0.1 deg at 6 S: 11.13 km x 11.06 km
    assert aoi.area_km2 == pytest.approx(11.132 * 11.07, rel=0.01)


def test_swapped_lat_lon_is_named(tmp_path: Path, sample_data: Path) -> None:
    swapped = [
        [[y, x] for x, y in ring]
        for ring in [[(-120.0, -6.0), (-119.9, -6.0), (-119.9, -5.9), (-120.0, -6.0)]]
    ]
    with pytest.raises(AoiError, match=r"look like \(lat, lon\).*swap"):
        load_aoi(
            _aoi(tmp_path, geometry={"type": "Polygon", "coordinates": swapped}), sample_data=sample_data
        )


def test_self_intersecting_ring_is_refused_then_repaired(tmp_path: Path, sample_data: Path) -> None:
    bowtie = [[[-56.0, -6.0], [-55.9, -5.9], [-55.9, -6.0], [-56.0, -5.9], [-56.0, -6.0]]]
    path = _aoi(tmp_path, geometry={"type": "Polygon", "coordinates": bowtie})
    with pytest.raises(AoiError, match=r"Self-intersection.*repair=True"):
        load_aoi(path, sample_data=sample_data)
    fixed = load_aoi(path, sample_data=sample_data, repair=True)
    assert fixed.geometry.is_valid and fixed.area_km2 > 0


@pytest.mark.parametrize("bad_id", ["../x", "A B", "", "x/y", "-lead"])
def test_unsafe_aoi_id(tmp_path: Path, sample_data: Path, bad_id: str) -> None:
    with pytest.raises(AoiError, match=r"aoi_id|missing properties"):
        load_aoi(_aoi(tmp_path, aoi_id=bad_id), sample_data=sample_data)


def test_too_large_gives_area_and_limit(tmp_path: Path, sample_data: Path) -> None:
    with pytest.raises(AoiError, match=r"area 12\d km² exceeds the limit of 50 km²"):
        load_aoi(_aoi(tmp_path), sample_data=sample_data, max_km2=50)


def test_declared_projected_crs_is_refused(tmp_path: Path, sample_data: Path) -> None:
    path = _aoi(tmp_path)
    doc = json.loads(path.read_text())
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "EPSG:32721"}},
        "features": [doc],
    }
    path.write_text(json.dumps(doc))
    with pytest.raises(AoiError, match=r"EPSG:32721.*Reproject"):
        load_aoi(path, sample_data=sample_data)


def test_empty_geometry(tmp_path: Path, sample_data: Path) -> None:
    with pytest.raises(AoiError, match="no geometry"):
        load_aoi(_aoi(tmp_path, geometry={}), sample_data=sample_data)
