"""The Sentinel Hub emulator driven by the real sentinelhub-py client: OAuth, Catalog paging,
Process API pixels, and 401 / 429 / 500 / timeout as the client sees them.

Expected values come from :mod:`.reference` (patches.csv and the GeoTIFFs read directly).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from .reference import AREA, SITES, expected_ids, nearest, patch, rows
from .sentinelhub import CATALOG_SEARCH, PROCESS, SentinelHubServer
from .shapes import assert_valid_requests

# Sentinel Hub --------------------------------------------------------------------------------

DN_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B02", "B03", "B04", "B08", "B11", "B12", "dataMask"], units: "DN"}],
          output: {bands: 7, sampleType: SampleType.UINT16}};
}
function evaluatePixel(s) { return [s.B02, s.B03, s.B04, s.B08, s.B11, s.B12, s.dataMask]; }
"""
REFL_SCRIPT = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: {bands: 3, sampleType: "FLOAT32"}};
}
function evaluatePixel(sample) {
  return [sample.B04, sample.B08, (sample.B08 - sample.B04) / (sample.B08 + sample.B04)];
}
"""
MASK_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B02", "SCL", "CLM", "dataMask"], units: ["DN", "DN", "DN", "DN"]}],
          output: {bands: 4, sampleType: "UINT16"}};
}
function evaluatePixel(s) { return [s.B02, s.SCL, s.CLM, s.dataMask]; }
"""


def _process(
    sh: SentinelHubServer, sample_id: str, script: str, when: tuple[str, str], **cfg: Any
) -> np.ndarray:
    """``("band", "y", "x")`` of a Process request on the patch's own UTM grid, via sentinelhub-py."""
    from sentinelhub import CRS, BBox, MimeType, SentinelHubRequest

    row = rows()[sample_id]
    bbox = BBox(
        (float(row["left"]), float(row["bottom"]), float(row["right"]), float(row["top"])),
        crs=CRS(int(row["epsg"])),
    )
    request = SentinelHubRequest(
        evalscript=script,
        input_data=[SentinelHubRequest.input_data(sh.data_collection(), time_interval=when)],
        responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
        bbox=bbox,
        size=(48, 48),
        config=sh.config(**cfg),
    )
    return np.moveaxis(request.get_data()[0], -1, 0)


def test_catalog_search_pages_with_the_sentinelhub_client(sentinelhub_api: SentinelHubServer) -> None:
    from sentinelhub import CRS, BBox, DataCollection, SentinelHubCatalog

    sentinelhub_api.publish(SITES)
    catalog = SentinelHubCatalog(config=sentinelhub_api.config())
    found = catalog.search(
        DataCollection.SENTINEL2_L2A,
        bbox=BBox(AREA, crs=CRS.WGS84),
        time=("2019-01-01", "2021-12-31"),
        filter="eo:cloud_cover < 20",
        limit=2,
    )
    assert set(found.get_ids()) == expected_ids(max_cloud=20)
    searches = [r.json() for r in sentinelhub_api.requests_to(CATALOG_SEARCH)]
    assert len(searches) == 3 and [s.get("next") for s in searches] == [None, 2, 4]
    assert_valid_requests(sentinelhub_api.requests)


def test_process_returns_the_patch_pixels(sentinelhub_api: SentinelHubServer) -> None:
    sentinelhub_api.publish(["gm0004"], dates={"t0"})  # night 1: before scene only
    before = ("2019-01-01", "2019-12-31")
    dn = _process(sentinelhub_api, "gm0004", DN_SCRIPT, before)
    want = patch("gm0004", "t0")
    np.testing.assert_array_equal(dn[:6], want)
    np.testing.assert_array_equal(dn[6], (want != 0).any(axis=0))
    after = ("2021-01-01", "2021-12-31")
    assert not _process(sentinelhub_api, "gm0004", DN_SCRIPT, after).any()  # nothing published there yet
    sentinelhub_api.publish(["gm0004"], dates={"t1"})  # night 2
    refl = _process(sentinelhub_api, "gm0004", REFL_SCRIPT, after)
    red, nir = patch("gm0004", "t1")[[2, 3]] / 10000.0
    assert refl.dtype == np.float32
    np.testing.assert_allclose(refl[:2], np.stack([red, nir]), rtol=1e-6)
    np.testing.assert_allclose(refl[2], (nir - red) / (nir + red), rtol=1e-5)
    masks = _process(sentinelhub_api, "gm0004", MASK_SCRIPT, before)
    cloud = want[0] > 1500  # the bright-cloud test, about 24 % of this patch
    assert 0.2 < cloud.mean() < 0.3
    np.testing.assert_array_equal(masks[2], cloud.astype(np.uint16))
    assert set(np.unique(masks[1][cloud])) == {9} and not set(np.unique(masks[1][~cloud])) & {0, 9}
    assert_valid_requests(sentinelhub_api.requests)


def test_process_mosaics_overlapping_patches(sentinelhub_api: SentinelHubServer) -> None:
    from sentinelhub import CRS, BBox, MimeType, SentinelHubRequest

    sentinelhub_api.publish(["gm0004", "gm0005"], dates={"t1"})  # 340 m apart: the patches overlap
    a, b = rows()["gm0004"], rows()["gm0005"]
    left, top = float(a["left"]), float(a["top"])  # on gm0004's grid, wide enough for both
    width = int(np.ceil((max(float(a["right"]), float(b["right"])) - left) / 10))
    height = int(np.ceil((top - min(float(a["bottom"]), float(b["bottom"]))) / 10))
    request = SentinelHubRequest(
        evalscript=DN_SCRIPT,
        input_data=[
            SentinelHubRequest.input_data(
                sentinelhub_api.data_collection(), time_interval=("2021-01-01", "2021-12-31")
            )
        ],
        responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
        bbox=BBox((left, top - 10 * height, left + 10 * width, top), crs=CRS(int(a["epsg"]))),
        size=(width, height),
        config=sentinelhub_api.config(),
    )
    out = np.moveaxis(request.get_data()[0], -1, 0)
    xs, ys = left + 5 + 10 * np.arange(width), top - 5 - 10 * np.arange(height)
    from_a, from_b = nearest(a, "t1", xs, ys), nearest(b, "t1", xs, ys)
    # mostRecent with equal dates: gm0005 sorts first, so it wins where it has data
    want = np.where((from_b != 0).any(axis=0), from_b, from_a)
    assert out.shape == (7, height, width) and height > 48 and width > 48
    np.testing.assert_array_equal(out[:6], want)
    np.testing.assert_array_equal(out[6], (want != 0).any(axis=0))
    assert 0 < out[6].mean() < 1  # both patches used, corners of the union box left empty


def test_bad_credentials_get_401_once(sentinelhub_api: SentinelHubServer) -> None:
    from oauthlib.oauth2.rfc6749.errors import InvalidClientError
    from sentinelhub import CRS, BBox, DataCollection, SentinelHubCatalog

    catalog = SentinelHubCatalog(config=sentinelhub_api.config(sh_client_secret="wrong"))
    area, year = BBox(AREA, crs=CRS.WGS84), ("2019-01-01", "2019-12-31")
    with pytest.raises(InvalidClientError, match="invalid_client"):  # oauthlib reads the RFC 6749 error body
        list(catalog.search(DataCollection.SENTINEL2_L2A, bbox=area, time=year))
    assert [r.status for r in sentinelhub_api.requests] == [401]  # refused, not retried, nothing else sent
    assert sentinelhub_api.issued_tokens == 0


def test_expired_token_is_a_401_for_the_client(sentinelhub_api: SentinelHubServer) -> None:
    from sentinelhub.exceptions import DownloadFailedException

    sentinelhub_api.publish(["gm0006"])
    _process(sentinelhub_api, "gm0006", DN_SCRIPT, ("2019-01-01", "2019-12-31"))
    sentinelhub_api.expire_tokens()
    with pytest.raises(DownloadFailedException, match="401"):
        _process(sentinelhub_api, "gm0006", DN_SCRIPT, ("2019-01-01", "2019-12-31"))
    assert [r.status for r in sentinelhub_api.requests_to(PROCESS)] == [200, 401]


def test_429_waits_retry_after_in_ms_then_succeeds(sentinelhub_api: SentinelHubServer) -> None:
    sentinelhub_api.publish(["gm0006"])
    sentinelhub_api.fail_next(429, retry_after=0.3, times=2, path=PROCESS)
    start = time.monotonic()
    with pytest.warns(Warning, match="rate limit"):
        dn = _process(sentinelhub_api, "gm0006", DN_SCRIPT, ("2019-01-01", "2019-12-31"))
    assert time.monotonic() - start >= 0.6 and dn[6].all()
    hits = sentinelhub_api.requests_to(PROCESS)
    assert [r.status for r in hits] == [429, 429, 200]


def test_500_is_retried_and_persistent_500_fails(sentinelhub_api: SentinelHubServer) -> None:
    from sentinelhub.exceptions import DownloadFailedException

    sentinelhub_api.publish(["gm0006"])
    sentinelhub_api.fail_next(500, path=PROCESS)
    assert _process(sentinelhub_api, "gm0006", DN_SCRIPT, ("2019-01-01", "2019-12-31"))[6].all()
    sentinelhub_api.fail_next(500, times=10, path=PROCESS)
    with pytest.raises(DownloadFailedException, match="500"):
        _process(sentinelhub_api, "gm0006", DN_SCRIPT, ("2019-01-01", "2019-12-31"))
    assert [r.status for r in sentinelhub_api.requests_to(PROCESS)] == [500, 200, 500, 500, 500]


def test_stall_past_the_client_timeout_is_retried_then_fails(sentinelhub_api: SentinelHubServer) -> None:
    from sentinelhub.exceptions import DownloadFailedException

    sentinelhub_api.publish(["gm0006"])
    sentinelhub_api.stall_next(1.0, path=PROCESS)
    dn = _process(
        sentinelhub_api, "gm0006", DN_SCRIPT, ("2019-01-01", "2019-12-31"), download_timeout_seconds=0.3
    )
    assert dn[6].all() and len(sentinelhub_api.requests_to(PROCESS)) == 2
    sentinelhub_api.stall_next(1.0, times=3, path=PROCESS)
    with pytest.raises(DownloadFailedException):
        _process(
            sentinelhub_api, "gm0006", DN_SCRIPT, ("2019-01-01", "2019-12-31"), download_timeout_seconds=0.3
        )
