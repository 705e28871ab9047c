"""Scene sources chosen by configuration (pipeline.ingest.sources) against the loopback emulators."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from servers.stac_api import StacApiServer
from shapely.geometry import box

from pipeline.core.config import Settings, load_settings
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.records import Aoi
from pipeline.ingest.sources import SceneSourceError, remote_listing, scene_specs, source_of, with_source
from pipeline.ingest.stac_assets import asset_band

SITE = "gm0626"


def _aoi(bounds: tuple[float, float, float, float], **inputs: object) -> Aoi:
    return Aoi(
        aoi_id="t", name="t", designation="reserve", country="SR", geometry=box(*bounds), inputs=dict(inputs)
    )


def test_env_selects_source_and_catalogue() -> None:
    s = load_settings(environ={"ASM_INGEST__SOURCE": "stac", "ASM_INGEST__STAC_URL": "http://127.0.0.1:9/"})
    assert (s.ingest.source, s.ingest.stac_url) == ("stac", "http://127.0.0.1:9/")
    with pytest.raises(ConfigError, match="Did you mean 'stac_url'"):
        load_settings(environ={"ASM_INGEST__STAC_UR": "x"})


def test_aoi_source_wins_over_setting() -> None:
    settings = Settings().with_overrides({"ingest": {"source": "stac"}})
    assert source_of(_aoi((0, 0, 1, 1), source="local"), settings=settings) == "local"
    assert source_of(_aoi((0, 0, 1, 1)), settings=settings) == "stac"
    assert with_source({}, settings=Settings()) == {}
    assert with_source({}, settings=settings)["ingest"]["source"] == "stac"


def test_earth_search_keys_map_to_sentinel2_names() -> None:
    asset = {"href": "x.tif", "roles": ["data"], "eo:bands": [{"name": "blue"}]}
    assert asset_band("blue", asset) == "B02"
    assert asset_band("swir22", {"href": "y.tif"}) == "B12"
    assert asset_band("red-jp2", {"href": "r.jp2", "roles": ["data"]}) is None
    assert asset_band("thumbnail", {"href": "t.png", "roles": ["thumbnail"]}) is None


def test_stac_search_gives_vsicurl_scenes_with_scale(stac_api: StacApiServer, gold_patches) -> None:  # type: ignore[no-untyped-def]
    stac_api.publish([SITE], dates={"t0", "t1"})
    aoi = _aoi(gold_patches.get(SITE, "t0").lonlat_bbox)
    settings = Settings().with_overrides({"ingest": {"source": "stac", "stac_url": stac_api.url}})
    scenes = scene_specs(aoi, settings=settings, period=None)
    assert [s.scene_id for s in scenes] == [gold_patches.get(SITE, k).item_id for k in ("t0", "t1")]
    first = scenes[0]
    assert set(first.band_paths) == {"B02", "B03", "B04", "B08", "B11", "B12"}
    assert str(first.band_paths["B02"]).startswith("/vsicurl/http")
    assert (first.scale, first.offset) == (0.0001, 0.0)
    listed = remote_listing(aoi, settings=settings)
    assert [r.key for r in listed] == [f"stac:{s.scene_id}" for s in scenes]


def test_stac_unreachable_names_the_catalogue() -> None:
    url = "http://127.0.0.1:9/stac"
    settings = Settings().with_overrides({"ingest": {"source": "stac", "stac_url": url}})
    with pytest.raises(SceneSourceError, match=re.escape(url)) as info:
        scene_specs(_aoi((0, 0, 1, 1)), settings=settings, period=None)
    assert isinstance(info.value, PipelineError)
    with pytest.raises(ConfigError, match="ASM_INGEST__STAC_URL"):
        scene_specs(
            _aoi((0, 0, 1, 1)),
            settings=Settings().with_overrides({"ingest": {"source": "stac"}}),
            period=None,
        )


def test_sentinelhub_without_credentials_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ASM_SH_CLIENT_ID", raising=False)
    monkeypatch.delenv("ASM_SH_CLIENT_SECRET", raising=False)
    settings = Settings().with_overrides({"ingest": {"source": "sentinelhub", "cache_dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match="ASM_SH_CLIENT_ID"):
        scene_specs(_aoi((0, 0, 1, 1)), settings=settings, period=None)
