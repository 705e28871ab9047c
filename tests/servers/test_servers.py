"""The STAC API emulator driven by pystac-client, odc-stac, rasterio and requests; and the
request-shape validators on what they recorded.

Expected values come from :mod:`.reference` (patches.csv and the GeoTIFFs read directly).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import rasterio
import requests
from shapely.geometry import box, mapping

from .reference import AREA, SITES, WINDOW, expected_ids, patch, rows
from .sentinelhub import CATALOG_SEARCH, PROCESS, SentinelHubServer
from .shapes import assert_valid_requests, request_problems
from .stac_api import StacApiServer

# STAC API ------------------------------------------------------------------------------------


def test_pystac_client_sees_an_item_search_api_with_query_and_filter(stac_api: StacApiServer) -> None:
    from pystac_client import Client
    from pystac_client.conformance import ConformanceClasses as CC

    client = Client.open(stac_api.url)
    for cls in (CC.CORE, CC.ITEM_SEARCH, CC.COLLECTIONS, CC.FEATURES, CC.QUERY, CC.FILTER):
        assert client.conforms_to(cls), cls
    coll = client.get_collection("sentinel-2-l2a")
    assert coll is not None and set(coll.extra_fields["item_assets"]) == {
        "blue",
        "green",
        "red",
        "nir",
        "swir16",
        "swir22",
    }
    assert requests.get(f"{stac_api.url}/collections/nope").status_code == 404


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_search_pages_and_filters_like_a_real_api(stac_api: StacApiServer, method: str) -> None:
    from pystac_client import Client

    stac_api.publish(SITES)
    want = expected_ids(max_cloud=20)
    assert len(want) == 6  # golden: gm0004/5 after only, gm0006/7 both, gm0002 cloudy, gm0003/8 off-window
    client = Client.open(stac_api.url)
    area: dict[str, Any] = {"bbox": AREA} if method == "POST" else {"intersects": mapping(box(*AREA))}
    cloud: dict[str, Any] = (
        {"query": {"eo:cloud_cover": {"lt": 20}}} if method == "POST" else {"filter": "eo:cloud_cover < 20"}
    )
    search = client.search(
        method=method, collections=["sentinel-2-l2a"], datetime=WINDOW, limit=2, max_items=50, **area, **cloud
    )
    items = list(search.items())
    assert {i.id for i in items} == want and len(items) == len(want)
    pages = stac_api.requests_to("/search", method)
    assert len(pages) == 3 and all(r.status == 200 for r in pages)  # 6 items, 2 per page, next links
    assert_valid_requests(stac_api.requests)


def test_cql2_json_filter_and_max_items(stac_api: StacApiServer) -> None:
    from pystac_client import Client

    stac_api.publish(SITES)
    cql = {
        "op": "and",
        "args": [
            {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 0]},
            {"op": "=", "args": [{"property": "asm:date_key"}, "t0"]},
        ],
    }
    found = list(Client.open(stac_api.url).search(filter=cql, limit=3, max_items=4).items())
    assert len(found) == 4 and all(i.properties["eo:cloud_cover"] == 0 for i in found)
    assert all(i.id.endswith(("20181231", "20191231")) for i in found)


def test_publish_controls_what_each_night_sees(stac_api: StacApiServer) -> None:
    def ids() -> list[str]:
        body = requests.post(
            f"{stac_api.url}/search", json={"ids": ["S2_gm0006_20191231", "S2_gm0006_20211231"]}
        )
        return [f["id"] for f in body.json()["features"]]

    assert ids() == []
    stac_api.publish(["gm0006"], dates={"t0"})  # night 1: only the before scene exists
    assert ids() == ["S2_gm0006_20191231"]
    stac_api.publish("gm0006", dates={"t1"})  # night 2: the after scene arrives
    assert ids() == ["S2_gm0006_20191231", "S2_gm0006_20211231"]
    stac_api.unpublish(dates={"t0"})
    assert ids() == ["S2_gm0006_20211231"]


@pytest.mark.parametrize(
    ("when", "want"),
    [
        ("2019-12-31T14:30:00Z", {"gm0001_20191231", "gm0002_20191231"}),
        ("../2019-06-30T00:00:00Z", {"gm0003_20181231"}),
        ("2022-01-01T00:00:00Z/..", {"gm0003_20231231"}),
        ("2020-01-01T00:00:00Z/2020-12-31T23:59:59Z", set()),
    ],
)
def test_datetime_instants_and_open_intervals(stac_api: StacApiServer, when: str, want: set[str]) -> None:
    stac_api.publish(["gm0001", "gm0002", "gm0003"])
    got = requests.get(f"{stac_api.url}/search", params={"datetime": when, "limit": "100"}).json()
    assert {f["id"].removeprefix("S2_") for f in got["features"]} == want


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"datetime": "2019-12-31"}, "RFC 3339"),
        ({"datetime": "../.."}, "open at both ends"),
        ({"limit": "0"}, "limit"),
        ({"bbox": "-79,-5,-78,-4", "intersects": '{"type":"Point","coordinates":[0,0]}'}, "cannot both"),
        ({"filter": "eo:cloud_cover ~ 3"}, "cql2-text"),
        ({"collection": "sentinel-2-l2a"}, "unknown search parameter"),
        ({"token": "garbage"}, "next link"),
    ],
)
def test_bad_parameters_get_400_with_a_json_body(
    stac_api: StacApiServer, params: dict[str, str], words: str
) -> None:
    reply = requests.get(f"{stac_api.url}/search", params=params)
    assert reply.status_code == 400 and words in reply.json()["description"]


def test_collection_items_pages_by_next_link(stac_api: StacApiServer) -> None:
    stac_api.publish(SITES[:5])
    url: str | None = f"{stac_api.url}/collections/sentinel-2-l2a/items?limit=4"
    seen: list[str] = []
    for _ in range(10):  # bounded: 10 items / 4 per page = 3 pages
        assert url is not None
        page = requests.get(url).json()
        seen += [f["id"] for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        if url is None:
            break
    assert len(seen) == 10 == len(set(seen)) and url is None
    one = requests.get(f"{stac_api.url}/collections/sentinel-2-l2a/items/{seen[0]}")
    assert one.status_code == 200 and one.json()["id"] == seen[0]
    assert_valid_requests(stac_api.requests)


def test_odc_stac_reads_the_served_cogs_pixel_for_pixel(stac_api: StacApiServer) -> None:
    import odc.stac
    from odc.geo import xy_
    from pystac_client import Client

    stac_api.publish(["gm0004"])
    items = list(Client.open(stac_api.url).search(ids=["S2_gm0004_20191231", "S2_gm0004_20211231"]).items())
    row = rows()["gm0004"]
    left, top, epsg = float(row["left"]), float(row["top"]), int(row["epsg"])
    west, south, east, north = items[0].bbox or (0.0, 0.0, 0.0, 0.0)
    cube = odc.stac.load(
        items,
        bands=["red", "nir"],
        crs=f"EPSG:{epsg}",
        resolution=10,
        bbox=(west, south, east, north),
        anchor=xy_((left % 10) / 10, (top % 10) / 10),
    )
    window = cube.sel(x=slice(left, left + 480), y=slice(top, top - 480))  # the patch's own 48 x 48 grid
    assert window.sizes["x"] == window.sizes["y"] == 48 and cube.sizes["time"] == 2
    for t, key in enumerate(("t0", "t1")):
        want = patch("gm0004", key)
        np.testing.assert_array_equal(window["red"].isel(time=t).values, want[2])
        scale = items[t].assets["nir"].extra_fields["raster:bands"][0]["scale"]
        np.testing.assert_allclose(window["nir"].isel(time=t).values * scale, want[3] / 10000.0)
    outside = (cube.x < left) | (cube.x > left + 480) | (cube.y > top) | (cube.y < top - 480)
    assert outside.any() and not cube["red"].where(outside, 0).values.any()  # around the patch: nodata
    ranged = [r for r in stac_api.asset_requests if r.headers.get("Range")]
    assert ranged and all(r.status == 206 for r in ranged)  # GDAL read through HTTP byte ranges


def test_asset_byte_ranges(stac_api: StacApiServer) -> None:
    stac_api.publish(["gm0001"], dates={"t0"})
    href = f"{stac_api.asset_url}/assets/sentinel-2-l2a/S2_gm0001_20191231/red.tif"
    whole = requests.get(href).content
    part = requests.get(href, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert requests.get(href, headers={"Range": "bytes=-10"}).content == whole[-10:]
    assert requests.get(href, headers={"Range": f"bytes={len(whole)}-"}).status_code == 416
    assert requests.head(href).headers["Content-Length"] == str(len(whole))
    with rasterio.open(f"/vsicurl/{href}") as src:  # GDAL defaults: sidecar probes answered 404
        np.testing.assert_array_equal(src.read(1), patch("gm0001", "t0")[2])
        assert src.crs.to_epsg() == 32717 and src.nodata == 0 and src.block_shapes == [(16, 16)]
    assert requests.get(href.replace("20191231", "20211231")).status_code == 404  # t1 not published
    stac_api.unpublish("gm0001")
    assert requests.get(href).status_code == 404


def test_faults_as_pystac_client_sees_them(stac_api: StacApiServer) -> None:
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    stac_api.publish(["gm0006"])
    client = Client.open(stac_api.url)
    stac_api.fail_next(500, path="/search")
    with pytest.raises(APIError) as info:
        list(client.search(ids=["S2_gm0006_20191231"]).items())
    assert info.value.status_code == 500
    retry = Retry(total=2, status_forcelist=[429], allowed_methods=None, respect_retry_after_header=True)
    patient = Client.open(stac_api.url, stac_io=StacApiIO(max_retries=retry))
    stac_api.fail_next(429, retry_after=1, path="/search")
    start = time.monotonic()
    assert [i.id for i in patient.search(ids=["S2_gm0006_20191231"]).items()] == ["S2_gm0006_20191231"]
    assert time.monotonic() - start >= 1.0  # Retry-After: 1 (seconds) was honoured
    assert [r.status for r in stac_api.requests_to("/search")][-2:] == [429, 200]
    stac_api.delay_s = 0.5
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{stac_api.url}/conformance", timeout=0.1)


# request shapes ------------------------------------------------------------------------------


def test_malformed_requests_are_refused_and_flagged(
    sentinelhub_api: SentinelHubServer, stac_api: StacApiServer
) -> None:
    token = requests.post(
        sentinelhub_api.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sentinelhub_api.client_id,
            "client_secret": sentinelhub_api.client_secret,
        },
    )
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    bad_process = {
        "input": {
            "bounds": {"bbox": [720710, 9437101, 720230, 9437581], "properties": {"crs": "EPSG:32717"}},
            "data": [
                {
                    "type": "sentinel-2-l2a",
                    "dataFilter": {
                        "timeRange": {"from": "2021-12-31T00:00:00Z", "to": "2021-01-01T00:00:00Z"}
                    },
                }
            ],
        },
        "output": {"width": 0, "height": 48, "resx": 10, "resy": 10},
    }
    reply = requests.post(f"{sentinelhub_api.url}{PROCESS}", json=bad_process, headers=auth)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "COMMON_BAD_PAYLOAD"
    bad_catalog = {
        "collections": ["sentinel-2-l2a", "sentinel-2-l1c"],
        "query": {"eo:cloud_cover": {"lt": 5}},
        "limit": 500,
    }
    assert (
        requests.post(f"{sentinelhub_api.url}{CATALOG_SEARCH}", json=bad_catalog, headers=auth).status_code
        == 400
    )
    problems = [p for r in sentinelhub_api.requests for p in request_problems(r)]
    for words in (
        "evalscript is required",
        "crs must be an OGC CRS URL",
        "min x",
        "starts after it ends",
        "not both",
        "integer 1..2500",
        "exactly one collection",
        "replaced by 'filter'",
        "1..100",
    ):
        assert any(words in p for p in problems), words
    with pytest.raises(AssertionError, match="documented shapes"):
        assert_valid_requests(sentinelhub_api.requests)
    requests.post(f"{stac_api.url}/search", json={"bbox": [720230, 9437101, 720710, 9437581], "limit": "10"})
    (stac_request,) = stac_api.requests  # UTM metres where lon/lat belong, and limit as a string
    found = " ".join(request_problems(stac_request))
    assert stac_request.status == 400 and "not UTM metres" in found and "limit must be an integer" in found
