"""Sentinel Hub source: Catalog API to list acquisitions, Process API to fetch them.

Flow for one AOI and period: the AOI's UTM grid (see :mod:`pipeline.ingest.grid`) is split
into requests of at most ``sh_max_px`` pixels a side with sentinelhub's ``BBoxSplitter``;
the Catalog API lists the acquisition days over it; for each day and tile one Process API
request returns the bands (x 10000, uint16) plus ``SCL`` (L2A) and ``dataMask`` as a GeoTIFF.
Responses are cached on disk by a fingerprint of the request, so a rerun downloads nothing.
The returned cube reads lazily from the cached files, exactly like the local source.

Retries and rate limits are sentinelhub's own (``SentinelHubDownloadClient``: 5xx, timeouts
and connection errors retried ``sh_max_attempts`` times with back-off; 429 waits the
``Retry-After`` the service sends, in ms). What is left after that becomes one of the
:class:`RemoteServiceError` children below, naming the cause and the fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import xarray as xr
from oauthlib.oauth2 import BackendApplicationClient
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from requests import RequestException
from requests_oauthlib import OAuth2Session
from sentinelhub import (
    CRS as ShCRS,
)
from sentinelhub import (
    BBox,
    BBoxSplitter,
    DataCollection,
    MimeType,
    MosaickingOrder,
    SentinelHubCatalog,
    SentinelHubDownloadClient,
    SentinelHubRequest,
    SentinelHubSession,
    SHConfig,
)
from sentinelhub.constants import SHConstants
from sentinelhub.download.handlers import fail_user_errors, retry_temporary_errors
from sentinelhub.download.models import DownloadRequest
from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException
from shapely.geometry import box

from pipeline.core.config import IngestParams, Secret, secret_from_env
from pipeline.core.errors import ConfigError, NoDataError, RemoteServiceError
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.ingest.cache import DiskCache, fingerprint
from pipeline.ingest.grid import GridSpec
from pipeline.ingest.scene_spec import cloud_filter
from pipeline.ingest.scenes import SceneSpec, aoi_grid, open_scene, stack_scenes

log = logging.getLogger(__name__)

COLLECTIONS = {"sentinel-2-l2a": DataCollection.SENTINEL2_L2A, "sentinel-2-l1c": DataCollection.SENTINEL2_L1C}


class SentinelHubAuthError(RemoteServiceError):
    """Sentinel Hub refused the credentials (401/403 or the token endpoint said no)."""

    exit_code = 2


class SentinelHubRateLimitError(RemoteServiceError):
    """Sentinel Hub kept answering 429 (rate limit / processing units) after waiting."""


class SentinelHubUnavailableError(RemoteServiceError):
    """Sentinel Hub failed with 5xx, timed out or was unreachable after every retry."""


class _RedactSecrets(logging.Filter):
    """Masks registered secrets in log records. requests_oauthlib logs the token request
    body, client secret included, at DEBUG level; this keeps it out of every log."""

    secrets: ClassVar[set[str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "****")
            record.msg, record.args = text, ()
        return True


_REDACT = _RedactSecrets()
for _name in ("requests_oauthlib.oauth2_session", "oauthlib", "sentinelhub.download.session", "urllib3"):
    logging.getLogger(_name).addFilter(_REDACT)


class _TimedSession(SentinelHubSession):
    """sentinelhub's session, but the token request has a timeout: upstream passes none to
    requests_oauthlib, so a stalled auth server would hang the nightly run forever."""

    @retry_temporary_errors
    @fail_user_errors
    def _fetch_token(self, request: DownloadRequest) -> dict[str, Any]:
        client = BackendApplicationClient(client_id=self.config.sh_client_id)
        with OAuth2Session(client=client) as oauth:
            oauth.register_compliance_hook("access_token_response", self._compliance_hook)
            token: dict[str, Any] = oauth.fetch_token(
                token_url=request.url,
                client_id=self.config.sh_client_id,
                client_secret=self.config.sh_client_secret,
                headers={**self.DEFAULT_HEADERS, **SHConstants.HEADERS},
                include_client_id=True,
                timeout=self.config.download_timeout_seconds,
            )
            return token


def _status(exc: BaseException) -> int | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        req = getattr(cur, "request_exception", None) or cur
        response = getattr(req, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return int(response.status_code)
        cur = cur.__cause__ or cur.__context__
    return None


def translate_error(exc: BaseException, *, what: str, url: str) -> RemoteServiceError:
    """Turn what sentinelhub / requests / oauthlib raised into a narrow, actionable error."""
    status = _status(exc)
    if isinstance(exc, OAuth2Error) or status in (401, 403):
        return SentinelHubAuthError(
            f"Sentinel Hub refused the credentials during {what} ({url}, HTTP {status or exc}). Check "
            "ASM_SH_CLIENT_ID / ASM_SH_CLIENT_SECRET and that the OAuth client is active."
        )
    if isinstance(exc, OutOfRequestsException) or status == 429:
        return SentinelHubRateLimitError(
            f"Sentinel Hub rate limit during {what} ({url}): still HTTP 429 after waiting Retry-After "
            "each time. Run again later, lower ingest.sh_threads, or check the account's processing units."
        )
    cause = f"HTTP {status}" if status else type(getattr(exc, "request_exception", None) or exc).__name__
    return SentinelHubUnavailableError(
        f"Sentinel Hub failed during {what} ({url}): {cause} after every retry. Run again later; "
        "raise ingest.sh_timeout_s or ingest.sh_max_attempts if the service is slow."
    )


def mask_bands(collection: str) -> tuple[str, ...]:
    """The mask bands requested after the spectral ones: the evalscript's output order and the
    band names of the files it returns must agree, so both come from here."""
    return ("SCL", "dataMask") if collection == "sentinel-2-l2a" else ("dataMask",)


def _evalscript(bands: Sequence[str], *, extra: Sequence[str]) -> str:
    """Evalscript v3: the bands as reflectance x 10000 and the masks (``extra``) as DN, all
    uint16."""
    inputs = [{"bands": [*bands, *extra], "units": ["REFLECTANCE"] * len(bands) + ["DN"] * len(extra)}]
    setup = {"input": inputs, "output": {"bands": len(bands) + len(extra), "sampleType": "UINT16"}}
    values = ", ".join([*(f"10000 * s.{b}" for b in bands), *(f"s.{b}" for b in extra)])
    return (
        "//VERSION=3\n"
        f"function setup() {{ return {json.dumps(setup)}; }}\n"
        f"function evaluatePixel(s) {{ return [{values}]; }}\n"
    )


def _collection_at(collection: DataCollection, base_url: str) -> DataCollection:
    """The collection served from ``base_url``: sentinelhub pins each predefined collection
    to its main deployment, so any other deployment (CDSE, a test server) needs its own
    definition (``define_from``, as sentinelhub documents for custom deployments)."""
    base = base_url.rstrip("/")
    if (collection.service_url or "").rstrip("/") == base:
        return collection
    name = f"ASM_{collection.name}_{hashlib.sha256(base.encode()).hexdigest()[:10]}"
    return collection.define_from(name, service_url=base)


class SentinelHubSource:
    """Scenes from Sentinel Hub (Catalog + Process API) through the sentinelhub client.

    Parameters
    ----------
    params
        Base URLs, collection, limits, retries and cache folder.
    client_id, client_secret
        OAuth client credentials; default from ``ASM_SH_CLIENT_ID`` / ``ASM_SH_CLIENT_SECRET``.
        They are handed only to ``SHConfig`` and never logged.
    """

    def __init__(
        self, params: IngestParams, *, client_id: Secret | None = None, client_secret: Secret | None = None
    ) -> None:
        self.params = params
        self._id = client_id if client_id is not None else secret_from_env("ASM_SH_CLIENT_ID")
        self._secret = client_secret if client_secret is not None else secret_from_env("ASM_SH_CLIENT_SECRET")
        if params.sh_collection not in COLLECTIONS:
            raise ConfigError(
                f"ingest.sh_collection {params.sh_collection!r} is not supported; "
                f"use one of {sorted(COLLECTIONS)}."
            )
        self.collection = _collection_at(COLLECTIONS[params.sh_collection], params.sh_base_url)
        self.cache = DiskCache(params.cache_dir, namespace="sentinelhub", ext="tif")
        self._session: SentinelHubSession | None = None

    def __repr__(self) -> str:
        return f"SentinelHubSource(base_url={self.params.sh_base_url!r}, client_id={self._id!r})"

    def config(self) -> SHConfig:
        """The ``SHConfig`` for this source (credentials inside; do not log it)."""
        if not (self._id and self._secret):
            raise ConfigError(
                "Sentinel Hub credentials are missing. Set ASM_SH_CLIENT_ID and ASM_SH_CLIENT_SECRET "
                "(an OAuth client from the Sentinel Hub dashboard)."
            )
        for url in (self.params.sh_base_url, self.params.sh_token_url):
            parts = urlparse(url)
            if parts.scheme == "http":
                if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
                    raise ConfigError(
                        f"{url} is plain http; Sentinel Hub URLs must be https (loopback excepted)."
                    )
                # oauthlib refuses http token URLs; a loopback test server is the one exception
                os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
        _RedactSecrets.secrets.add(self._secret.reveal())
        cfg = SHConfig(use_defaults=True)
        cfg.sh_client_id = self._id.reveal()
        cfg.sh_client_secret = self._secret.reveal()
        cfg.sh_base_url = self.params.sh_base_url.rstrip("/")
        cfg.sh_token_url = self.params.sh_token_url
        cfg.download_timeout_seconds = self.params.sh_timeout_s
        cfg.max_download_attempts = self.params.sh_max_attempts
        cfg.download_sleep_time = self.params.sh_retry_sleep_s
        cfg.max_retries = self.params.sh_max_rate_retries
        cfg.number_of_download_processes = self.params.sh_threads
        return cfg

    def _client(self, cfg: SHConfig) -> SentinelHubDownloadClient:
        if self._session is None:
            try:
                self._session = _TimedSession(config=cfg)
            except (DownloadFailedException, OAuth2Error, RequestException) as exc:
                raise translate_error(exc, what="authentication", url=cfg.sh_token_url) from exc
        return SentinelHubDownloadClient(config=cfg, session=self._session, default_retry_time=1.0)

    def tiles(self, grid: GridSpec) -> list[GridSpec]:
        """The grid split into requests of at most ``sh_max_px`` a side (BBoxSplitter), each
        snapped back to whole pixels of ``grid`` so tiles abut without gaps or overlaps."""
        nx = math.ceil(grid.width / self.params.sh_max_px)
        ny = math.ceil(grid.height / self.params.sh_max_px)
        crs = ShCRS(grid.crs.to_epsg())
        splitter = BBoxSplitter([box(*grid.bounds)], crs, split_shape=(nx, ny))
        rx, ry = grid.resolution
        left, _, _, top = grid.bounds
        out = []
        for bb in splitter.get_bbox_list():
            c0, c1 = round((bb.min_x - left) / rx), round((bb.max_x - left) / rx)
            r0, r1 = round((top - bb.max_y) / ry), round((top - bb.min_y) / ry)
            t = grid.transform * grid.transform.translation(c0, r0)
            out.append(GridSpec(crs=grid.crs, transform=t, width=c1 - c0, height=r1 - r0))
        return out

    def search(self, aoi: Aoi, period: Period, *, grid: GridSpec | None = None) -> list[dict[str, Any]]:
        """Catalog API features (id, datetime, cloud cover) over the AOI in the period, with
        ``eo:cloud_cover`` at most ``ingest.max_cloud_cover`` (:func:`cloud_filter`)."""
        cfg = self.config()
        grid = grid or aoi_grid(aoi, resolution=self.params.resolution_m)
        catalog = SentinelHubCatalog(config=cfg)
        catalog.client = self._client(cfg)
        end = datetime.combine(period.end, datetime.max.time())
        try:
            found = list(
                catalog.search(
                    self.collection,
                    bbox=BBox(grid.bounds, crs=ShCRS(grid.crs.to_epsg())),
                    time=(datetime.combine(period.start, datetime.min.time()), end),
                    filter=cloud_filter(self.params.max_cloud_cover),
                    fields={
                        "include": ["id", "geometry", "properties.datetime", "properties.eo:cloud_cover"],
                        "exclude": [],
                    },
                )
            )
        except (DownloadFailedException, OAuth2Error, RequestException) as exc:
            raise translate_error(exc, what="catalog search", url=catalog.service_url) from exc
        log.info("Sentinel Hub catalog: %d acquisitions over '%s' in %s", len(found), aoi.aoi_id, period)
        return found

    def requests_for(
        self, day: datetime, tiles: Sequence[GridSpec], bands: Sequence[str], cfg: SHConfig
    ) -> list[SentinelHubRequest]:
        script = _evalscript(bands, extra=mask_bands(self.params.sh_collection))
        return [
            SentinelHubRequest(
                evalscript=script,
                input_data=[
                    SentinelHubRequest.input_data(
                        data_collection=self.collection,
                        time_interval=(day, day + timedelta(days=1) - timedelta(seconds=1)),
                        mosaicking_order=MosaickingOrder.LEAST_CC,
                    )
                ],
                responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
                bbox=BBox(t.bounds, crs=ShCRS(t.crs.to_epsg())),
                size=(t.width, t.height),
                config=cfg,
            )
            for t in tiles
        ]

    def fetch(self, requests: Sequence[SentinelHubRequest], cfg: SHConfig) -> list[str]:
        """Cached file of each request; only the misses are downloaded (in parallel)."""
        downloads = [r.download_list[0] for r in requests]
        keys = [fingerprint({"url": d.url, "payload": d.post_values}) for d in downloads]
        paths: dict[str, str] = {}
        missing = []
        for key, dl in zip(keys, downloads, strict=True):
            hit = self.cache.get(key)
            if hit is not None:
                paths[key] = str(hit)
            else:
                missing.append((key, dl))
        log.info(
            "Sentinel Hub: %d requests, %d in cache, %d to download", len(keys), len(paths), len(missing)
        )
        if missing:
            client = self._client(cfg)
            try:
                responses = client.download(
                    [dl for _, dl in missing], max_threads=self.params.sh_threads, decode_data=False
                )
            except (DownloadFailedException, OAuth2Error, RequestException) as exc:
                raise translate_error(exc, what="process request", url=missing[0][1].url or "") from exc
            for (key, _), resp in zip(missing, responses, strict=True):
                paths[key] = str(self.cache.put(key, resp.content))
        return [paths[k] for k in keys]

    def load(
        self,
        aoi: Aoi,
        period: Period | None,
        *,
        bands: Sequence[str],
        resolution: float | None = None,
        chunks: int = 512,
    ) -> xr.Dataset:
        """Search, fetch (or reuse the cache) and return the lazy cube on the AOI's UTM grid.

        Returns
        -------
        xr.Dataset
            float32 reflectance 0-1 per band plus ``SCL`` (L2A) and ``dataMask``, dims
            ``("time", "y", "x")``, one time step per acquisition day.

        Raises
        ------
        NoDataError
            The catalog lists no acquisition over the AOI in the period.
        SentinelHubAuthError, SentinelHubRateLimitError, SentinelHubUnavailableError
            What the service did, after sentinelhub's retries.
        """
        if period is None:
            raise ConfigError("Sentinel Hub needs a period (e.g. --period 2020-01/2020-12).")
        cfg = self.config()
        grid = aoi_grid(aoi, resolution=resolution or self.params.resolution_m)
        features = self.search(aoi, period, grid=grid)
        days = sorted(
            {datetime.fromisoformat(f["properties"]["datetime"].replace("Z", "")).date() for f in features}
        )
        if not days:
            raise NoDataError(
                f"Sentinel Hub lists no {self.params.sh_collection} acquisition over AOI '{aoi.aoi_id}' in "
                f"{period}. Widen the period."
            )
        tiles = self.tiles(grid)
        extra = mask_bands(self.params.sh_collection)
        parts = []
        for day in days:
            start = datetime.combine(day, datetime.min.time())
            files = self.fetch(self.requests_for(start, tiles, bands, cfg), cfg)
            for path in files:
                spec = SceneSpec(
                    scene_id=f"{self.params.sh_collection}_{day:%Y%m%d}",
                    path=Path(path),
                    band_names=(*bands, *extra),
                    datetime=start,
                    scale=1e-4,
                    offset=0.0,  # harmonizeValues (the default) already removed BOA_ADD_OFFSET
                )
                parts.append(open_scene(spec, aoi, bands=[*bands, *extra], grid=grid, chunks=chunks))
        return stack_scenes(parts)
