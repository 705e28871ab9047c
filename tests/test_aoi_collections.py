"""AOI collections (issue 19): one AOI file yields one AOI per feature of a boundary file; the
237 mining-affected indigenous territories of the Amazon basin are one file."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main
from pipeline.core.config import Settings, load_settings
from pipeline.core.errors import AoiError
from pipeline.ingest.aoi import find_aoi, list_aoi_files, load_aoi, load_aois

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO / "aoi" / "amazon-indigenous-territories.geojson"


def _settings(sample_data: Path, aoi_dir: Path) -> Settings:
    return load_settings(None, environ={}, cli={"sample_data": sample_data, "aoi_dir": aoi_dir})


def test_the_basin_collection_gives_237_territories_as_the_data_readme_counts(sample_data: Path) -> None:
    loaded = load_aois([COLLECTION], settings=_settings(sample_data, REPO / "aoi"))
    assert not loaded.failures
    by_country = collections.Counter(a.country for a in loaded.aois)
    # ../shared/data/README.md: Ecuador 98, Brazil 39, Guyana 25, Peru 21, Venezuela 19,
    # Bolivia 18, Colombia 11, French Guiana 6
    assert by_country == {"Ecuador": 98, "Brazil": 39, "Guyana": 25, "Peru": 21, "Venezuela": 19,
                          "Bolivia": 18, "Colombia": 11, "French Guiana": 6}  # fmt: skip
    ids = [a.aoi_id for a in loaded.aois]
    assert len(set(ids)) == 237
    kayapo = next(a for a in loaded.aois if a.aoi_id == "it-br23001_0")
    assert (kayapo.name, kayapo.wdpa_id, kayapo.protection, kayapo.collection) == (
        "Kayapó", "BR23001_0", "indigenous", "amazon-indigenous-territories"
    )  # fmt: skip
    assert kayapo.area_km2 == pytest.approx(32_840, rel=0.01)  # FUNAI: 3,284,005 ha
    assert all(a.name and a.protected and a.inputs["detections"]["format"] == "amw" for a in loaded.aois)


def test_ids_are_stable_between_loads(sample_data: Path) -> None:
    settings = _settings(sample_data, REPO / "aoi")
    first = [a.aoi_id for a in load_aois([COLLECTION], settings=settings).aois]
    again = [a.aoi_id for a in load_aois([COLLECTION], settings=settings).aois]
    assert first == again


def _collection(tmp_path: Path, sample_data: Path, features: list[dict[str, Any]], **spec: Any) -> Path:
    data = tmp_path / "data"  # the register must live in the sample-data folder: a test one
    (data / "boundaries").mkdir(parents=True)
    (data / "boundaries" / "register.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    doc = {
        "type": "Feature",
        "geometry": None,
        "properties": {
            "name": "test collection", "designation": "reserve", "country": "BR", "protected": True,
            "collection": {"id": "tc", "path": "boundaries/register.geojson", "id_column": "code",
                           "id_prefix": "tc-", "name_columns": ["nome"], **spec},
        },
    }  # fmt: skip
    folder = tmp_path / "aoi"
    folder.mkdir()
    path = folder / "tc.geojson"
    path.write_text(json.dumps(doc))
    return path


def _square(x: float, y: float, d: float = 0.01) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]}


def _feature(code: Any, geometry: dict[str, Any], nome: str | None = "N") -> dict[str, Any]:
    return {"type": "Feature", "properties": {"code": code, "nome": nome}, "geometry": geometry}


def test_a_bad_member_is_its_own_failure_and_the_others_load(tmp_path: Path, sample_data: Path) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[-55, -5], [-54.9, -4.9], [-54.9, -5], [-55, -4.9], [-55, -5]]],
    }
    path = _collection(
        tmp_path,
        sample_data,
        [
            _feature("A 1", _square(-55, -6)),
            _feature("b2", bowtie),
            _feature("a-1", _square(-54, -6)),
            _feature("C3", _square(-53, -6), nome=None),
        ],
    )
    settings = _settings(tmp_path / "data", path.parent)
    loaded = load_aois(list_aoi_files(path.parent), settings=settings)
    assert [a.aoi_id for a in loaded.aois] == ["tc-a-1", "tc-c3"]
    assert [a.name for a in loaded.aois] == ["N", "C3"]  # no name: the register id
    names = [f.name for f in loaded.failures]
    assert names == ["tc.geojson#tc-b2", "tc.geojson#tc-a-1"]
    assert "invalid geometry" in loaded.failures[0].message
    assert "'A 1' and 'a-1' both give AOI id 'tc-a-1'" in loaded.failures[1].message
    # load_aoi on a collection names the way to load it
    with pytest.raises(AoiError, match="is an AOI collection"):
        load_aoi(path, sample_data=tmp_path / "data")
    # one member by id, or its failure
    assert find_aoi(path, "tc-c3", settings=settings).name == "C3"
    with pytest.raises(AoiError, match="invalid geometry"):
        find_aoi(path, "tc-b2", settings=settings)


def test_a_missing_column_names_the_columns(tmp_path: Path, sample_data: Path) -> None:
    path = _collection(tmp_path, sample_data, [_feature("a", _square(-55, -6))], country_column="pais")
    loaded = load_aois([path], settings=_settings(tmp_path / "data", path.parent))
    assert not loaded.aois
    assert "has no column ['pais']" in loaded.failures[0].message and "code" in loaded.failures[0].message


def test_protection_from_a_register_column(tmp_path: Path, sample_data: Path) -> None:
    feats = [_feature("p", _square(-55, -6)), _feature("u", _square(-54, -6))]
    feats[0]["properties"]["GRUPO4"], feats[1]["properties"]["GRUPO4"] = "PI", "US"
    path = _collection(
        tmp_path, sample_data, feats, protection_column="GRUPO4",
        protection_values={"PI": "strict", "US": "sustainable_use"},
    )  # fmt: skip
    loaded = load_aois([path], settings=_settings(tmp_path / "data", path.parent))
    assert [(a.aoi_id, a.protection) for a in loaded.aois] == [
        ("tc-p", "strict"),
        ("tc-u", "sustainable_use"),
    ]


def test_aoi_list_and_validate_show_the_members(
    capsys: pytest.CaptureFixture[str], sample_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "aoi"
    folder.mkdir()
    doc = json.loads(COLLECTION.read_text())
    doc["properties"]["collection"]["match"] = {"country": "French Guiana"}
    (folder / "fg.geojson").write_text(json.dumps(doc))
    (folder / "broken.geojson").write_text("[]")
    common = ["--sample-data", str(sample_data), "--aoi-dir", str(folder)]
    assert main([*common, "aoi", "list"]) == 1  # one invalid file
    out = capsys.readouterr().out
    assert "it-gf10149_0" in out and "collection amazon-indigenous-territories" in out
    assert "broken.geojson   INVALID" in out
    assert "6 AOIs (1 collections), 1 invalid" in out
    assert main([*common, "aoi", "validate", str(COLLECTION)]) == 0
    assert "collection of 237 valid AOIs, 0 invalid" in capsys.readouterr().out
