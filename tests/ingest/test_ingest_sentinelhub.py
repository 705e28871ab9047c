"""SentinelHubSource with the real sentinelhub client against a local emulator (conftest)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.core.config import IngestParams, Secret
from pipeline.core.errors import ConfigError, RemoteServiceError
from pipeline.core.periods import parse_period
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.scenes import LocalFolderSource, SceneSpec
from pipeline.ingest.sentinelhub import (
    SentinelHubAuthError,
    SentinelHubRateLimitError,
    SentinelHubSource,
    SentinelHubUnavailableError,
)

pytestmark = pytest.mark.filterwarnings("ignore:Download rate limit hit")

BANDS = ["B02", "B03", "B04", "B08", "B11"]
SECRET = "s3cr3t-do-not-log"
PERIOD = parse_period("2020-01/2020-12")


def _source(base: str, tmp_path: Path, **over: Any) -> SentinelHubSource:
    fields: dict[str, Any] = {
        "sh_base_url": base,
        "sh_token_url": f"{base}/oauth/token",
        "cache_dir": tmp_path / "cache",
        "sh_max_px": 100,
        "sh_retry_sleep_s": 0.05,
        "sh_max_attempts": 3,
        "sh_timeout_s": 5.0,
        "sh_threads": 2,
    }
    params = IngestParams(**{**fields, **over})
    return SentinelHubSource(params, client_id=Secret("test-client"), client_secret=Secret(SECRET))


@pytest.fixture
def trombetas(aoi_dir: Path, sample_data: Path) -> Any:
    return load_aoi(aoi_dir / "trombetas.geojson", sample_data=sample_data)


def test_search_split_fetch_and_values_match_the_local_scene(
    sh_server: Any, tmp_path: Path, trombetas: Any, sample_data: Path
) -> None:
    base, state = sh_server
    src = _source(base, tmp_path)
    cube = src.load(trombetas, PERIOD, bands=BANDS)
    # 2 catalog dates; the ~245 x 235 px AOI grid split into 3 x 3 requests of <= 100 px
    assert cube.sizes["time"] == 2 and state.hits["/api/v1/process"] == 18
    widths = {b["output"]["width"] for b in state.bodies if b["path"] == "/api/v1/process"}
    assert max(widths) <= 100
    assert list(cube["scene_id"].values) == ["sentinel-2-l2a_20200305", "sentinel-2-l2a_20200723"]
    assert cube.rio.crs.to_epsg() == 32721
    assert all(v.chunks is not None for v in cube.data_vars.values())  # downloaded, but read lazily
    # the tiles reassemble into the same pixels the local source reads from the file itself
    spec = SceneSpec.from_mapping(trombetas.inputs["scenes"][0], root=sample_data)
    local = LocalFolderSource([spec]).load(trombetas, None, bands=BANDS, resolution=10.0)
    got = cube["B04"].isel(time=0).values
    want = local["B04"].isel(time=0).values
    both = np.isfinite(got) & np.isfinite(want)
    assert both.mean() > 0.95
    np.testing.assert_allclose(got[both], want[both], atol=1e-6)
    assert set(np.unique(cube["SCL"].isel(time=0).values[both])) <= {4.0, 6.0}


def test_rerun_downloads_nothing_and_corrupt_cache_is_refetched(
    sh_server: Any, tmp_path: Path, trombetas: Any
) -> None:
    base, state = sh_server
    first = _source(base, tmp_path).load(trombetas, PERIOD, bands=BANDS)["B08"].values
    assert state.hits["/api/v1/process"] == 18
    again = _source(base, tmp_path).load(trombetas, PERIOD, bands=BANDS)["B08"].values
    assert state.hits["/api/v1/process"] == 18  # all from cache
    np.testing.assert_array_equal(first, again)
    victim = sorted((tmp_path / "cache" / "sentinelhub").rglob("*.tif"))[3]
    victim.write_bytes(victim.read_bytes()[:500])  # truncated download
    third = _source(base, tmp_path).load(trombetas, PERIOD, bands=BANDS)["B08"].values
    assert state.hits["/api/v1/process"] == 19  # exactly the damaged one again
    np.testing.assert_array_equal(first, third)


def test_401_on_token_names_the_credentials_and_never_logs_the_secret(
    sh_server: Any, tmp_path: Path, trombetas: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base, state = sh_server
    state.plan["/oauth/token"] = [401] * 5
    caplog.set_level(logging.DEBUG)
    src = _source(base, tmp_path)
    with pytest.raises(SentinelHubAuthError, match=r"ASM_SH_CLIENT_ID") as info:
        src.load(trombetas, PERIOD, bands=BANDS)
    assert state.hits["/oauth/token"] == 1  # a refused credential is not retried
    assert SECRET not in str(info.value) and SECRET not in caplog.text and SECRET not in repr(src)


def test_401_on_process_is_an_auth_error(sh_server: Any, tmp_path: Path, trombetas: Any) -> None:
    base, state = sh_server
    state.plan["/api/v1/process"] = [401]
    with pytest.raises(SentinelHubAuthError, match=r"process request.*HTTP 401"):
        _source(base, tmp_path).load(trombetas, PERIOD, bands=BANDS)


def test_429_waits_retry_after_then_succeeds(sh_server: Any, tmp_path: Path, trombetas: Any) -> None:
    base, state = sh_server
    state.plan["/api/v1/process"] = [429, 429]
    cube = _source(base, tmp_path).load(trombetas, PERIOD, bands=BANDS)
    assert state.hits["/api/v1/process"] == 20 and cube.sizes["time"] == 2


def test_429_forever_is_a_rate_limit_error(sh_server: Any, tmp_path: Path, trombetas: Any) -> None:
    base, state = sh_server
    state.plan["/api/v1/catalog/1.0.0/search"] = [429] * 10
    with pytest.raises(SentinelHubRateLimitError, match=r"429.*sh_threads"):
        _source(base, tmp_path, sh_max_rate_retries=3).load(trombetas, PERIOD, bands=BANDS)
    assert state.hits["/api/v1/catalog/1.0.0/search"] == 3


def test_500_is_retried_then_succeeds_and_persistent_500_fails(
    sh_server: Any, tmp_path: Path, trombetas: Any
) -> None:
    base, state = sh_server
    state.plan["/api/v1/catalog/1.0.0/search"] = [500]
    assert _source(base, tmp_path).load(trombetas, PERIOD, bands=BANDS).sizes["time"] == 2
    assert state.hits["/api/v1/catalog/1.0.0/search"] == 2
    state.plan["/api/v1/process"] = [500] * 100
    with pytest.raises(SentinelHubUnavailableError, match=r"HTTP 500 after every retry"):
        _source(base, tmp_path / "fresh").load(trombetas, PERIOD, bands=BANDS)


def test_timeout_is_retried_then_reported(sh_server: Any, tmp_path: Path, trombetas: Any) -> None:
    base, state = sh_server
    state.stall_s = 1.0
    state.plan["/api/v1/catalog/1.0.0/search"] = ["timeout"]
    assert _source(base, tmp_path, sh_timeout_s=0.3).load(trombetas, PERIOD, bands=BANDS).sizes["time"] == 2
    state.plan["/api/v1/catalog/1.0.0/search"] = ["timeout"] * 3
    with pytest.raises(SentinelHubUnavailableError, match=r"Timeout after every retry.*sh_timeout_s"):
        _source(base, tmp_path, sh_timeout_s=0.3).load(trombetas, PERIOD, bands=BANDS)


def test_stalled_token_endpoint_times_out_instead_of_hanging(
    sh_server: Any, tmp_path: Path, trombetas: Any
) -> None:
    base, state = sh_server
    state.stall_s = 1.0
    state.plan["/oauth/token"] = ["timeout"]
    assert _source(base, tmp_path, sh_timeout_s=0.3).load(trombetas, PERIOD, bands=BANDS).sizes["time"] == 2
    assert state.hits["/oauth/token"] == 2
    state.plan["/oauth/token"] = ["timeout"] * 3
    with pytest.raises(SentinelHubUnavailableError, match=r"authentication.*Timeout"):
        _source(base, tmp_path, sh_timeout_s=0.3).load(trombetas, PERIOD, bands=BANDS)


def test_missing_credentials_and_plain_http_are_config_errors(tmp_path: Path, trombetas: Any) -> None:
    params = IngestParams(cache_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"ASM_SH_CLIENT_ID and ASM_SH_CLIENT_SECRET"):
        SentinelHubSource(params, client_id=Secret(""), client_secret=Secret("")).config()
    remote_http = IngestParams(cache_dir=tmp_path, sh_base_url="http://example.com")
    with pytest.raises(ConfigError, match="https"):
        SentinelHubSource(remote_http, client_id=Secret("a"), client_secret=Secret("b")).config()
    assert issubclass(SentinelHubAuthError, RemoteServiceError)
