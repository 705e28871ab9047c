"""Where an AOI's scenes come from: its own list (``local``), a STAC API or Sentinel Hub.

The source of an AOI is its ``inputs.source`` when it names one, else the setting
``ingest.source`` (``local`` by default). :func:`scene_specs` turns the AOI into the list of
:class:`SceneSpec` the run reads, whatever the source:

- ``local``: the AOI's ``inputs.scenes`` (files under the sample data), as always;
- ``stac``: a pystac-client search of ``ingest.stac_url`` (the AOI's bbox, the period's end as
  the upper bound, ``ingest.stac_collections``, every page), each item a scene with one
  ``/vsicurl`` href per band (Earth Search names ``blue`` .. ``swir22`` mapped to ``B02`` ..
  ``B12``), the reflectance scale / offset of its ``raster:bands`` and its datetime;
- ``sentinelhub``: a Catalog search, then one Process API request per acquisition over the
  part of the AOI it covers (:class:`SentinelHubSource`), downloaded once into
  ``<ingest.cache_dir>/sentinelhub/``; each file is a scene.

Remote searches are bounded by the end of the period only, and by ``eo:cloud_cover <=
ingest.max_cloud_cover``: the gold-mining detector folds the scenes after its stored baseline
(``ops.mining``) and leaves out those it already folded, and a ``--full`` run rebuilds the
baseline from every scene the search finds.

The nightly planner (:mod:`pipeline.ops.incremental`) needs the same search without the
run's settings: :func:`with_source` (called when an AOI file is loaded) writes the source and
the ingest settings it was loaded with into ``inputs["ingest"]``, and :func:`remote_listing`
lists the remote scenes with them (item id and datetime, no pixels) so a new scene is a new
input and a night without one is ``up_to_date``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapely.geometry import shape

from pipeline.core.config import IngestParams, Settings
from pipeline.core.config_build import build
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.ingest.index import scene_from_stac_item
from pipeline.ingest.paths import sample_data_dir
from pipeline.ingest.scene_spec import SceneSpec
from pipeline.ingest.scenes import aoi_grid

if TYPE_CHECKING:  # sentinelhub is imported only when an AOI uses it
    from pipeline.ingest.sentinelhub import SentinelHubSource

log = logging.getLogger(__name__)

REMOTE_SOURCES = ("stac", "sentinelhub")
#: Bands fetched from a remote source: what the gold-mining detector and the index path read.
REMOTE_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
#: Start of a search with no period start (Sentinel-2A's first images).
SENTINEL2_START = date(2015, 6, 23)


class SceneSourceError(PipelineError):
    """A scene source (STAC API, Sentinel Hub) cannot be searched or read for an AOI."""


@dataclass(frozen=True, kw_only=True)
class RemoteScene:
    """One scene a remote source lists for an AOI (what the run ledger records)."""

    key: str
    """Input id in the ledger: ``<source>:<item id>``."""
    fingerprint: str
    """SHA-256 of the item's id, datetime and asset hrefs: a re-processed item is a new input."""
    day: date
    """Acquisition day (UTC)."""


def source_of(aoi: Aoi, *, settings: Settings | None = None) -> str:
    """The AOI's source: ``inputs.source``, else the one it was loaded with, else the setting."""
    chosen = aoi.inputs.get("source") or (aoi.inputs.get("ingest") or {}).get("source")
    if not chosen:
        chosen = settings.ingest.source if settings is not None else "local"
    if chosen not in ("local", *REMOTE_SOURCES):
        raise ConfigError(
            f"AOI '{aoi.aoi_id}': source {chosen!r} is not one of local, stac, sentinelhub. "
            "Fix inputs.source in the AOI file or ingest.source (ASM_INGEST__SOURCE)."
        )
    return str(chosen)


def with_source(inputs: dict[str, Any], *, settings: Settings) -> dict[str, Any]:
    """AOI ``inputs`` with ``inputs["ingest"]`` (the ingest settings, JSON-safe) when its
    source is remote, so the nightly planner can list its scenes; local AOIs unchanged."""
    chosen = inputs.get("source") or settings.ingest.source
    if chosen not in ("local", *REMOTE_SOURCES):
        raise ConfigError(
            f"inputs.source {chosen!r} is not one of local, stac, sentinelhub. Fix the AOI file."
        )
    if chosen not in REMOTE_SOURCES:
        return inputs
    params = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(settings.ingest).items()}
    return {**inputs, "ingest": {**params, "source": chosen}}


def _params(aoi: Aoi, settings: Settings | None) -> IngestParams:
    if settings is not None:
        return settings.ingest
    stamped = {k: v for k, v in (aoi.inputs.get("ingest") or {}).items() if k != "source"}
    return build(IngestParams, stamped, where=f"AOI '{aoi.aoi_id}' inputs.ingest")


def _window(period: Period | None) -> Period:
    """Everything up to the period's end (today when there is none)."""
    end = period.end if period is not None else datetime.now(UTC).date()
    return Period(SENTINEL2_START, end, f"{SENTINEL2_START.isoformat()}/{end.isoformat()}")


# STAC ---------------------------------------------------------------------------------------
def cloud_query(params: IngestParams) -> dict[str, Any] | None:
    """The STAC Query-extension clause ``eo:cloud_cover <= ingest.max_cloud_cover`` (None at
    100 %: no filter, so items without the property are found too)."""
    if params.max_cloud_cover >= 100:
        return None
    return {"eo:cloud_cover": {"lte": params.max_cloud_cover}}


def stac_items(aoi: Aoi, *, params: IngestParams, period: Period | None) -> list[dict[str, Any]]:
    """Every item of ``params.stac_url`` over the AOI's bbox up to the period's end (all pages)
    with ``eo:cloud_cover`` at most ``params.max_cloud_cover`` (:func:`cloud_query`).

    Raises
    ------
    ConfigError
        ``ingest.stac_url`` is empty.
    SceneSourceError
        The catalogue cannot be opened or searched (names its URL).
    """
    from pystac import STACError
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    url = params.stac_url
    if not url:
        raise ConfigError(
            f"AOI '{aoi.aoi_id}' reads scenes from STAC but no catalogue is set. Set ingest.stac_url "
            "(ASM_INGEST__STAC_URL), e.g. https://earth-search.aws.element84.com/v1."
        )
    collections = [c.strip() for c in params.stac_collections.split(",") if c.strip()]
    window = _window(period)
    try:
        client = Client.open(url, timeout=params.sh_timeout_s)
        search = client.search(
            collections=collections or None,
            bbox=list(aoi.geometry.bounds),
            datetime=f"../{window.end.isoformat()}T23:59:59Z",
            limit=100,
            query=cloud_query(params),
        )
        items = [item.to_dict() for item in search.items()]
    except (APIError, STACError, OSError, ValueError) as exc:
        raise SceneSourceError(
            f"STAC catalogue {url} cannot be searched for AOI '{aoi.aoi_id}' ({type(exc).__name__}: "
            f"{exc}). Check ingest.stac_url (ASM_INGEST__STAC_URL), the collections "
            f"{collections} and the network."
        ) from exc
    log.info("STAC %s: %d items over '%s' up to %s", url, len(items), aoi.aoi_id, window.end)
    return items


def _stac_scenes(aoi: Aoi, *, params: IngestParams, period: Period | None) -> list[SceneSpec]:
    items = stac_items(aoi, params=params, period=period)
    return [scene_from_stac_item(item, base=Path(".")) for item in items]


# Sentinel Hub -------------------------------------------------------------------------------
def _sh_features(
    source: SentinelHubSource, aoi: Aoi, *, period: Period | None
) -> list[tuple[dict[str, Any], datetime]]:
    found = source.search(aoi, _window(period))
    out = []
    for feature in found:
        when = datetime.fromisoformat(str(feature["properties"]["datetime"]).replace("Z", "+00:00"))
        out.append((feature, when.replace(tzinfo=None)))
    return sorted(out, key=lambda fw: (fw[1], str(fw[0].get("id"))))


def _sentinelhub_scenes(aoi: Aoi, *, params: IngestParams, period: Period | None) -> list[SceneSpec]:
    """One scene per acquisition and request tile, over the part of the AOI the acquisition
    covers, downloaded (or reused) in the cache."""
    from pipeline.ingest.sentinelhub import SentinelHubSource, mask_bands

    source = SentinelHubSource(params)
    cfg = source.config()  # names ASM_SH_CLIENT_ID when credentials are missing
    extra = mask_bands(params.sh_collection)
    out = []
    for feature, when in _sh_features(source, aoi, period=period):
        covered = aoi.geometry
        if feature.get("geometry"):
            covered = aoi.geometry.intersection(shape(feature["geometry"]))
        if covered.is_empty or covered.area == 0:
            continue
        grid = aoi_grid(replace(aoi, geometry=covered), resolution=params.resolution_m)
        start = datetime.combine(when.date(), datetime.min.time())
        files = source.fetch(source.requests_for(start, source.tiles(grid), REMOTE_BANDS, cfg), cfg)
        for i, path in enumerate(files):
            out.append(
                SceneSpec(
                    scene_id=f"{feature.get('id')}" + (f"_{i}" if len(files) > 1 else ""),
                    path=Path(path),
                    band_names=(*REMOTE_BANDS, *extra),
                    datetime=when,
                    scale=1e-4,
                    offset=0.0,  # harmonizeValues (the default) already removed BOA_ADD_OFFSET
                )
            )
    log.info("Sentinel Hub: %d scenes over '%s' in %s", len(out), aoi.aoi_id, params.cache_dir)
    return out


# the run's entry points ---------------------------------------------------------------------
def scene_specs(aoi: Aoi, *, settings: Settings, period: Period | None) -> list[SceneSpec]:
    """The scenes the run reads for ``aoi`` (see the module docstring), oldest first.

    Parameters
    ----------
    aoi
        The AOI (EPSG:4326); its ``inputs.source`` overrides ``settings.ingest.source``.
    settings
        ``ingest.*`` says where remote scenes come from; ``sample_data`` roots local paths.
    period
        The run's period; remote sources return every scene up to its end (None = today).

    Raises
    ------
    ConfigError
        Unknown source, no ``ingest.stac_url``, or no Sentinel Hub credentials
        (``ASM_SH_CLIENT_ID`` / ``ASM_SH_CLIENT_SECRET``).
    SceneSourceError, RemoteServiceError
        The catalogue or service failed: the AOI's error, the night's other AOIs go on.
    """
    kind = source_of(aoi, settings=settings)
    if kind == "local":
        root = sample_data_dir(settings.sample_data)
        return [SceneSpec.from_mapping(s, root=root) for s in aoi.inputs.get("scenes", [])]
    scenes = (
        _stac_scenes(aoi, params=settings.ingest, period=period)
        if kind == "stac"
        else _sentinelhub_scenes(aoi, params=settings.ingest, period=period)
    )
    return sorted(scenes, key=lambda s: (s.datetime or datetime.min, s.scene_id))


def _digest(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def remote_listing(aoi: Aoi, *, settings: Settings | None = None) -> list[RemoteScene]:
    """The scenes a remote source lists for the AOI today (no pixels read); ``[]`` for a local
    AOI. Without ``settings`` the ingest settings the AOI was loaded with are used
    (:func:`with_source`); an AOI loaded without them counts as local.

    Raises
    ------
    ConfigError, SceneSourceError, RemoteServiceError
        As :func:`scene_specs`.
    """
    if settings is None and not aoi.inputs.get("ingest"):
        return []
    kind = source_of(aoi, settings=settings)
    if kind == "local":
        return []
    params = _params(aoi, settings)
    out = []
    if kind == "stac":
        for item in stac_items(aoi, params=params, period=None):
            when = str((item.get("properties") or {}).get("datetime"))
            hrefs = sorted(str(a.get("href")) for a in (item.get("assets") or {}).values())
            doc = {"id": item.get("id"), "datetime": when, "hrefs": hrefs}
            day = datetime.fromisoformat(when.replace("Z", "+00:00")).date()
            out.append(RemoteScene(key=f"stac:{item.get('id')}", fingerprint=_digest(doc), day=day))
    else:
        from pipeline.ingest.sentinelhub import SentinelHubSource

        source = SentinelHubSource(params)
        source.config()
        for feature, acquired in _sh_features(source, aoi, period=None):
            doc = {
                "id": feature.get("id"),
                "datetime": acquired.isoformat(),
                "collection": params.sh_collection,
            }
            key = f"sentinelhub:{feature.get('id')}"
            out.append(RemoteScene(key=key, fingerprint=_digest(doc), day=acquired.date()))
    return out
