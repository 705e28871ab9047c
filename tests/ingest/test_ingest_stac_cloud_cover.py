"""Remote scene searches filter on ``eo:cloud_cover <= ingest.max_cloud_cover`` (issue 17):
scenes above the threshold are never listed, so never read or downloaded.

Real scenes: site gm0012 of imagery/gold_mining_patches is clear before (t0, 0.13 % bright
cloud) and cloudy after (t1, 80.56 %); gm0062 is cloudy before (62.54 %) and clear after
(0.0 %). The emulators compute ``eo:cloud_cover`` from the files themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from servers.scenes import SceneLibrary
from servers.sentinelhub import CATALOG_SEARCH, PROCESS, SentinelHubServer
from servers.stac_api import StacApiServer
from shapely.geometry import box
from shapely.ops import unary_union

from pipeline.core.config import Settings
from pipeline.core.records import Aoi
from pipeline.ingest.sources import remote_listing, scene_specs

SITES = ("gm0012", "gm0062")


def _aoi(library: SceneLibrary, site: str) -> Aoi:
    outline = unary_union([library.get(site, k).footprint for k in ("t0", "t1")])
    return Aoi(aoi_id=site, name=site, designation="reserve", country="BR", geometry=box(*outline.bounds))


def _clear(library: SceneLibrary, site: str, limit: float) -> list[str]:
    return [library.get(site, k).item_id for k in ("t0", "t1") if library.get(site, k).cloud_cover <= limit]


@pytest.mark.parametrize("limit", [50.0, 100.0])
def test_stac_search_leaves_out_cloudy_scenes(
    stac_api: StacApiServer, gold_patches: SceneLibrary, limit: float
) -> None:
    stac_api.publish(list(SITES))
    settings = Settings().with_overrides(
        {"ingest": {"source": "stac", "stac_url": stac_api.url, "max_cloud_cover": limit}}
    )
    for site in SITES:
        aoi = _aoi(gold_patches, site)
        got = [s.scene_id for s in scene_specs(aoi, settings=settings, period=None)]
        assert got == _clear(gold_patches, site, limit)
        assert [r.key for r in remote_listing(aoi, settings=settings)] == [f"stac:{i}" for i in got]
    assert (len(_clear(gold_patches, "gm0012", limit)), len(_clear(gold_patches, "gm0062", limit))) == (
        (1, 1) if limit == 50.0 else (2, 2)
    )
    searches = [r for r in stac_api.requests if r.path == "/search"]
    bodies = [r.json() if r.method == "POST" else r.params for r in searches]
    assert searches and all(("query" in b) == (limit < 100) for b in bodies), bodies
    # nothing of a cloudy scene was read: its assets are never requested
    cloudy = {gold_patches.get("gm0012", "t1").item_id, gold_patches.get("gm0062", "t0").item_id}
    if limit < 100:
        assert not any(c in r.path for r in stac_api.asset_requests for c in cloudy)


def test_sentinelhub_catalog_filters_cloud_cover_and_fetches_only_clear_scenes(
    sentinelhub_api: SentinelHubServer,
    gold_patches: SceneLibrary,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sentinelhub_api.publish(list(SITES))
    monkeypatch.setenv("ASM_SH_CLIENT_ID", sentinelhub_api.client_id)
    monkeypatch.setenv("ASM_SH_CLIENT_SECRET", sentinelhub_api.client_secret)
    settings = Settings().with_overrides(
        {
            "ingest": {
                "source": "sentinelhub",
                "sh_base_url": sentinelhub_api.url,
                "sh_token_url": sentinelhub_api.token_url,
                "sh_retry_sleep_s": 0,
                "cache_dir": str(tmp_path / "cache"),
                "max_cloud_cover": 50,
            }
        }
    )
    assert os.environ["OAUTHLIB_INSECURE_TRANSPORT"] == "1"
    got = {site: scene_specs(_aoi(gold_patches, site), settings=settings, period=None) for site in SITES}
    assert {site: [s.datetime.date() for s in specs] for site, specs in got.items()} == {
        "gm0012": [gold_patches.get("gm0012", "t0").composite_end],
        "gm0062": [gold_patches.get("gm0062", "t1").composite_end],
    }
    bodies = [r.json() for r in sentinelhub_api.requests_to(CATALOG_SEARCH, "POST")]
    assert bodies and all(b.get("filter") == "eo:cloud_cover <= 50" for b in bodies), bodies
    # one Process API request per clear acquisition, none for the cloudy ones
    assert len(sentinelhub_api.requests_to(PROCESS, "POST")) == 2
