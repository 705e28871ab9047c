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
    from pipeline.core.config import load_settings
    from pipeline.ingest.aoi import load_aois

    settings = load_settings(None, environ={}, cli={"sample_data": sample_data, "aoi_dir": aoi_dir})
    loaded = load_aois(list_aoi_files(aoi_dir), settings=settings)
    ids = {a.aoi_id for a in loaded.aois}
    assert not loaded.failures
    assert {"trombetas", "amapa-gold", "munduruku", "flota-amapa", "ti-uaca", "it-br23001_0"} <= ids
    assert len(ids) == len(loaded.aois) == 244  # 7 AOI files + 237 territories of one collection


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


# -- issue 18 item 9: bad AOI files are clear errors, never tracebacks -----------------------

NAN_SQUARE = "[[[-56.0, -6.0], [NaN, -6.0], [-55.9, -5.9], [-56.0, -5.9], [-56.0, -6.0]]]"


def _raw(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "raw.geojson"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _feature_text(
    geometry: str = json.dumps({"type": "Polygon", "coordinates": SQUARE}), **props: Any
) -> str:
    base = {"aoi_id": "t1", "name": "T", "designation": "reserve", "country": "BR", **props}
    return (
        f'{{"type": "Feature", "properties": {json.dumps(base, ensure_ascii=False)}, "geometry": {geometry}}}'
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[]", r"top level is a JSON array.*GeoJSON Feature"),
        ('"str"', r"top level is a JSON string.*GeoJSON Feature"),
        ("42", r"top level is a JSON number.*GeoJSON Feature"),
        (
            '{"type": "FeatureCollection", "crs": "EPSG:32721", "features": []}',
            r"'crs' must be an object.*EPSG:4326",
        ),
        ('{"type": "Feature", "properties": [], "geometry": null}', r"'properties' must be an object"),
        (_feature_text(name=["a", "b"]), r"property 'name' must be text, got a JSON array \['a', 'b'\]"),
        (_feature_text(aoi_id=["t1"]), r"property 'aoi_id' must be text"),
        (_feature_text(inputs=[1]), r"'inputs' must be an object"),
        (_feature_text(inputs={"scenes": "imagery/x.tif"}), r"inputs\.scenes.*list of objects"),
        (
            _feature_text(inputs={"registry": {"path": 3, "format": "sigmine"}}),
            r"inputs\.registry\.path.*text",
        ),
        (
            _feature_text(inputs={"registry": {"path": "r.geojson", "format": "nope"}}),
            r"format 'nope'.*sigmine",
        ),
        (_feature_text(boundary=["x"], geometry="null"), r"'boundary' must be an object"),
        (
            _feature_text(geometry=f'{{"type": "Polygon", "coordinates": {NAN_SQUARE}}}'),
            r"NaN.*finite number",
        ),
        (
            _feature_text(
                geometry='{"type": "Polygon", "coordinates": [[[-56, -6], [1e999, -6], [-56, -5]]]}'
            ),
            r"not finite",
        ),
        (_feature_text(geometry='{"type": "Polygon", "coordinates": "x"}'), r"geometry cannot be parsed"),
        (_feature_text(geometry='{"type": "Polygon", "coordinates": [[[1]]]}'), r"geometry cannot be parsed"),
        (_feature_text(geometry='"POLYGON"'), r"'geometry' must be a GeoJSON geometry object"),
        (_feature_text(protected="false"), r"'protected' must be JSON true or false.*got 'false'"),
        (_feature_text(protected=1), r"'protected' must be JSON true or false"),
        (_feature_text(aoi_id="trombetas\n"), r"aoi_id 'trombetas\\n' is not safe"),
        (_feature_text(aoi_id="Trombetas"), r"aoi_id 'Trombetas' is not safe"),
        (_feature_text(wdpa_id={"a": 1}), r"'wdpa_id' must be text or a number"),
    ],
)
def test_bad_aoi_files_are_clear_errors(tmp_path: Path, sample_data: Path, text: str, match: str) -> None:
    with pytest.raises(AoiError, match=match) as exc:
        load_aoi(_raw(tmp_path, text), sample_data=sample_data)
    assert "raw.geojson" in str(exc.value)  # the message names the file


def test_latin1_aoi_file_names_the_byte_and_the_fix(tmp_path: Path, sample_data: Path) -> None:
    path = _raw(tmp_path, _feature_text(name="Reserva São Marcos").encode("latin-1"))
    with pytest.raises(AoiError, match=r"not UTF-8.*byte 0xe3.*iconv -f latin1 -t utf-8"):
        load_aoi(path, sample_data=sample_data)


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (None, False)])
def test_protected_is_a_strict_boolean(tmp_path: Path, sample_data: Path, value: Any, expected: bool) -> None:
    props = {} if value is None else {"protected": value}
    assert load_aoi(_aoi(tmp_path, **props), sample_data=sample_data).protected is expected


def test_aoi_file_size_limit_names_size_setting_and_remedy(tmp_path: Path, sample_data: Path) -> None:
    path = _aoi(tmp_path)
    path.write_text(path.read_text() + " " * 30_000)  # ~30 kB
    with pytest.raises(AoiError, match=r"0\.03 MB.*limit of 0\.01 MB.*max_aoi_file_mb.*boundary"):
        load_aoi(path, sample_data=sample_data, max_file_mb=0.01)
    assert load_aoi(path, sample_data=sample_data).aoi_id == "t1"  # default limit 20 MB


def _data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "imagery").mkdir(parents=True)
    (root / "imagery" / "ok.tif").write_bytes(b"x")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "secret.tif").write_bytes(b"x")
    (root / "imagery" / "link.tif").symlink_to(outside / "secret.tif")
    (root / "det").mkdir()
    (root / "det" / "a_1.geojson").write_text("{}")
    (root / "det" / "a_2.geojson").symlink_to(outside / "secret.tif")
    return root


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"scenes": [{"path": "/etc/passwd"}]}, r"'/etc/passwd' is an absolute path"),
        ({"registry": {"path": "/etc/passwd", "format": "native"}}, r"'/etc/passwd' is an absolute path"),
        ({"scenes": [{"path": "../secret/secret.tif"}]}, r"leaves the sample-data folder"),
        ({"scenes": [{"path": "imagery/link.tif"}]}, r"leaves the sample-data folder.*symlink"),
        ({"scenes": [{"bands": {"B04": "../secret/secret.tif"}}]}, r"leaves the sample-data folder"),
        (
            {"detections": {"path": "det/a_*.geojson", "format": "amw"}},
            r"a_2\.geojson.*leaves the sample-data",
        ),
    ],
)
def test_input_paths_stay_in_the_sample_data_folder(
    tmp_path: Path, inputs: dict[str, Any], match: str
) -> None:
    root = _data_root(tmp_path)
    path = _aoi(tmp_path, inputs=inputs)
    with pytest.raises(AoiError, match=match) as exc:
        load_aoi(path, sample_data=root)
    assert "allow_absolute_paths" in str(exc.value)
    # the operator can allow it deliberately
    assert load_aoi(path, sample_data=root, allow_absolute_paths=True).inputs == inputs


def test_inputs_inside_the_folder_are_fine_even_with_dotdot(tmp_path: Path) -> None:
    root = _data_root(tmp_path)
    inputs = {"scenes": [{"path": "imagery/../imagery/ok.tif"}], "detections": {"path": "det/a_1.geojson"}}
    assert load_aoi(_aoi(tmp_path, inputs=inputs), sample_data=root).inputs == inputs


def test_boundary_path_is_confined_too(tmp_path: Path) -> None:
    root = _data_root(tmp_path)
    path = _aoi(tmp_path, geometry={}, boundary={"path": "/etc/passwd", "match": {"name": "x"}})
    with pytest.raises(AoiError, match=r"boundary\.path.*absolute path"):
        load_aoi(path, sample_data=root)


def _write_aoi_file(folder: Path, name: str, aoi_id: str) -> Path:
    doc = {
        "type": "Feature",
        "properties": {"aoi_id": aoi_id, "name": aoi_id, "designation": "reserve", "country": "BR"},
        "geometry": {"type": "Polygon", "coordinates": SQUARE},
    }
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


def test_load_aois_keeps_going_past_a_bad_file(tmp_path: Path, sample_data: Path) -> None:
    from pipeline.core.config import load_settings
    from pipeline.ingest.aoi import load_aois

    folder = tmp_path / "aoi"
    folder.mkdir()
    _write_aoi_file(folder, "a.geojson", "a")
    (folder / "b.geojson").write_text("[]")
    _write_aoi_file(folder, "c.geojson", "c")
    elsewhere = _write_aoi_file(tmp_path, "outside.geojson", "outside")
    (folder / "d.geojson").symlink_to(elsewhere)
    settings = load_settings(None, environ={}, cli={"sample_data": sample_data, "aoi_dir": folder})
    loaded = load_aois(list_aoi_files(folder), settings=settings)
    assert [a.aoi_id for a in loaded.aois] == ["a", "c"]
    assert [f.path.name for f in loaded.failures] == ["b.geojson", "d.geojson"]
    assert "top level is a JSON array" in loaded.failures[0].message
    assert "symlink" in loaded.failures[1].message and "outside the AOI folder" in loaded.failures[1].message


def test_duplicate_aoi_ids_are_refused_naming_both_files(tmp_path: Path, sample_data: Path) -> None:
    from pipeline.core.config import load_settings
    from pipeline.core.errors import ConfigError
    from pipeline.ingest.aoi import load_aois

    folder = tmp_path / "aoi"
    folder.mkdir()
    _write_aoi_file(folder, "one.geojson", "same")
    _write_aoi_file(folder, "two.geojson", "same")
    settings = load_settings(None, environ={}, cli={"sample_data": sample_data, "aoi_dir": folder})
    with pytest.raises(ConfigError, match=r"aoi_id 'same'.*one\.geojson.*two\.geojson") as exc:
        load_aois(list_aoi_files(folder), settings=settings)
    assert exc.value.exit_code == 2
