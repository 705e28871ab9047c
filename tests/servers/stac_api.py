"""A STAC API (core, collections, features, item search + query/filter) over the gold-mine patches.

Why: a STAC scene source must be tested with the real pystac-client and odc-stac doing real HTTP
(conformance checks, POST searches, ``next``-link paging, GDAL range reads of the assets), and
against the real pixels, without the internet. Items look like Earth Search v1
``sentinel-2-l2a`` items: one per site and date, one single-band COG per band keyed ``blue green
red nir swir16 swir22`` with ``eo:bands`` and ``raster:bands`` (scale 0.0001, offset 0, nodata
0), ``proj:*`` and an honest ``eo:cloud_cover`` (% of pixels with B02 > 0.15). Which scenes are
served is set at runtime with :meth:`publish` / :meth:`publish_all` / :meth:`unpublish`.

Spec: STAC API v1.0.0 (https://github.com/radiantearth/stac-api-spec, item-search, ogcapi-features)
with the Query and Filter extensions; paging is a ``next`` link whose POST form carries
``{"token": ...}`` with ``merge: true``, as pystac-client follows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode

from shapely.geometry import box, mapping, shape

from .assets import AssetHost
from .filters import compile_filter, cql2_matches, in_interval, parse_interval, query_matches
from .loopback import LoopbackServer, RecordedRequest, Reply, json_reply
from .scenes import (
    BAND_INFO,
    BANDS,
    DATE_KEYS,
    EARTH_SEARCH_ASSETS,
    SCALE,
    Publication,
    Publishing,
    Scene,
    SceneLibrary,
    load_library,
    scene_properties,
)
from .shapes import STAC_ITEMS_KEYS, stac_get_params, stac_search_problems

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
GEOJSON = "application/geo+json"
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#query",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
]
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
]
ASSET_OF_BAND = {band: key for key, band in EARTH_SEARCH_ASSETS.items()}


def _bad(message: str) -> Reply:
    return json_reply(400, {"code": "BadRequest", "description": message})


def _not_found(message: str) -> Reply:
    return json_reply(404, {"code": "NotFoundError", "description": message})


def asset_metadata(band: str) -> dict[str, Any]:
    """The Earth Search v1 style description of one band asset (without href)."""
    common, description, centre, fwhm = BAND_INFO[band]
    return {
        "type": COG,
        "title": f"{description} - 10m",
        "roles": ["data", "reflectance"],
        "gsd": 10,
        "eo:bands": [
            {
                "name": common,
                "common_name": common,
                "description": description,
                "center_wavelength": centre,
                "full_width_half_max": fwhm,
            }
        ],
        "raster:bands": [
            {"nodata": 0, "data_type": "uint16", "spatial_resolution": 10, "scale": SCALE, "offset": 0}
        ],
    }


class StacApiServer(Publishing, LoopbackServer):
    """The STAC API emulator. Start it (or use the ``stac_api`` fixture) and point clients at ``url``.

    Parameters
    ----------
    library
        The scenes it can publish (default: the shared gold_mining_patches).
    asset_dir
        Where the single-band COGs are written when scenes are published (default: a
        temporary folder removed at :meth:`stop`); a child process serves them
        (:mod:`.assets`), with its own URL (``asset_url``) and log (``asset_requests``).
    collection_id
        The one collection's id (Earth Search's ``sentinel-2-l2a`` by default).
    max_limit
        Page size cap; a larger ``limit`` is clamped, as OGC API Features requires.
    """

    name = "stac-api"

    def __init__(
        self,
        library: SceneLibrary | None = None,
        *,
        asset_dir: Path | None = None,
        collection_id: str = "sentinel-2-l2a",
        max_limit: int = 100,
        delay_s: float = 0.0,
    ) -> None:
        super().__init__(delay_s=delay_s)
        self.library = library or load_library()
        self.publication = Publication(self.library)
        self.collection_id = collection_id
        self.max_limit = max_limit
        self.assets = AssetHost(asset_dir)

    def start(self) -> Self:
        self.assets.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        self.assets.stop()

    @property
    def asset_url(self) -> str:
        """Base URL of the asset file server (another port: it runs in a child process)."""
        return self.assets.url

    @property
    def asset_requests(self) -> list[RecordedRequest]:
        """Every request the asset server saw (GDAL's HEAD and ranged GETs)."""
        return self.assets.requests

    def publish(self, sample_ids: Iterable[str] | str, *, dates: Iterable[str] = DATE_KEYS) -> list[Scene]:
        """Serve these sites at these dates; their COGs are written now (~2 ms a file)."""
        scenes = super().publish(sample_ids, dates=dates)
        for scene in scenes:
            self.assets.write(self.collection_id, scene, EARTH_SEARCH_ASSETS)
        return scenes

    def publish_all(self, *, dates: Iterable[str] = DATE_KEYS) -> None:
        """Serve all 575 sites at ``dates`` (writes 6 COGs per scene: ~12 s for both dates)."""
        self.publish(self.library.sample_ids, dates=dates)

    def unpublish(
        self, sample_ids: Iterable[str] | str | None = None, *, dates: Iterable[str] = DATE_KEYS
    ) -> None:
        """Withdraw scenes; their items and assets answer 404 from now on."""
        before = {s.item_id: s for s in self.published}
        super().unpublish(sample_ids, dates=dates)
        for item_id in before.keys() - {s.item_id for s in self.published}:
            self.assets.remove(self.collection_id, before[item_id])

    @property
    def search_url(self) -> str:
        return f"{self.url}/search"

    # documents -------------------------------------------------------------------------------
    def item(self, scene: Scene) -> dict[str, Any]:
        """The STAC Item of a scene as served now (hrefs on this server)."""
        base, cid = self.url, self.collection_id
        assets = {
            ASSET_OF_BAND[b]: {"href": self.assets.href(cid, scene, ASSET_OF_BAND[b]), **asset_metadata(b)}
            for b in BANDS
        }
        return {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": EXTENSIONS,
            "id": scene.item_id,
            "collection": cid,
            "geometry": mapping(scene.footprint),
            "bbox": list(scene.lonlat_bbox),
            "properties": scene_properties(scene),
            "assets": assets,
            "links": [
                {"rel": "self", "href": f"{base}/collections/{cid}/items/{scene.item_id}", "type": GEOJSON},
                {"rel": "parent", "href": f"{base}/collections/{cid}", "type": "application/json"},
                {"rel": "collection", "href": f"{base}/collections/{cid}", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
            ],
        }

    def collection(self) -> dict[str, Any]:
        scenes = list(self.library.scenes.values())
        west, south = min(s.lonlat_bbox[0] for s in scenes), min(s.lonlat_bbox[1] for s in scenes)
        east, north = max(s.lonlat_bbox[2] for s in scenes), max(s.lonlat_bbox[3] for s in scenes)
        times = sorted(s.iso_datetime for s in scenes)
        base, cid = self.url, self.collection_id
        return {
            "type": "Collection",
            "stac_version": "1.0.0",
            "stac_extensions": ["https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"],
            "id": cid,
            "title": "Sentinel-2 L2A (emulated: gold-mining patches, two dates per site)",
            "description": "Real Sentinel-2 composites over Amazon gold-mining sites served as dated scenes.",
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [[west, south, east, north]]},
                "temporal": {"interval": [[times[0], times[-1]]]},
            },
            "summaries": {"platform": ["sentinel-2a"], "constellation": ["sentinel-2"], "gsd": [10]},
            "item_assets": {ASSET_OF_BAND[b]: asset_metadata(b) for b in BANDS},
            "links": [
                {"rel": "self", "href": f"{base}/collections/{cid}", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
                {"rel": "parent", "href": f"{base}/", "type": "application/json"},
                {"rel": "items", "href": f"{base}/collections/{cid}/items", "type": GEOJSON},
            ],
        }

    def landing(self) -> dict[str, Any]:
        base = self.url
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "asm-emulated-stac-api",
            "title": "asm-monitor test STAC API",
            "description": "Loopback STAC API serving the gold-mining patches as dated Sentinel-2 scenes.",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{base}/conformance", "type": "application/json"},
                {"rel": "data", "href": f"{base}/collections", "type": "application/json"},
                {
                    "rel": "child",
                    "href": f"{base}/collections/{self.collection_id}",
                    "type": "application/json",
                },
                {"rel": "search", "href": f"{base}/search", "type": GEOJSON, "method": "GET"},
                {"rel": "search", "href": f"{base}/search", "type": GEOJSON, "method": "POST"},
            ],
        }

    # routing ---------------------------------------------------------------------------------
    def route(self, req: RecordedRequest) -> Reply:
        path, method = req.path.rstrip("/") or "/", "GET" if req.method == "HEAD" else req.method
        cid = self.collection_id
        if path == "/search":
            if method == "POST":
                return self._search_post(req)
            return self._search_get(req) if method == "GET" else json_reply(405, {"code": "MethodNotAllowed"})
        if method != "GET":
            return json_reply(405, {"code": "MethodNotAllowed", "description": f"{req.method} {path}"})
        if path == "/":
            return json_reply(200, self.landing())
        if path == "/conformance":
            return json_reply(200, {"conformsTo": CONFORMANCE})
        if path == "/collections":
            links = [
                {"rel": "self", "href": f"{self.url}/collections"},
                {"rel": "root", "href": f"{self.url}/"},
            ]
            return json_reply(200, {"collections": [self.collection()], "links": links})
        match = re.fullmatch(r"/collections/([^/]+)(/items(?:/([^/]+))?)?", path)
        if match and match.group(1) == cid:
            if match.group(3):
                return self._one_item(match.group(3))
            return self._items_get(req) if match.group(2) else json_reply(200, self.collection())
        if match:
            return _not_found(f"collection {match.group(1)!r} does not exist; this API serves {cid!r}")
        return _not_found(f"no route for {path}")

    def _one_item(self, item_id: str) -> Reply:
        scene = next((s for s in self.published if s.item_id == item_id), None)
        if scene is None:
            return _not_found(f"item {item_id!r} is not published")
        return json_reply(200, self.item(scene), content_type=GEOJSON)

    def _search_get(self, req: RecordedRequest) -> Reply:
        params, problems = stac_get_params(req.params)
        return self._search(params, problems, page_link=lambda tok: self._get_link("/search", req, tok))

    def _search_post(self, req: RecordedRequest) -> Reply:
        try:
            params = req.json()
        except ValueError as exc:
            return _bad(f"search body is not JSON: {exc}")
        params = params if params is not None else {}

        def link(token: str) -> dict[str, Any]:
            return {
                "rel": "next",
                "href": self.search_url,
                "type": GEOJSON,
                "method": "POST",
                "body": {"token": token},
                "merge": True,
            }

        return self._search(params, [], page_link=link)

    def _items_get(self, req: RecordedRequest) -> Reply:
        params, problems = stac_get_params(req.params)
        problems += stac_search_problems(params, allowed=STAC_ITEMS_KEYS)
        params["collections"] = [self.collection_id]
        path = f"/collections/{self.collection_id}/items"
        return self._search(params, problems, page_link=lambda tok: self._get_link(path, req, tok))

    def _get_link(self, path: str, req: RecordedRequest, token: str) -> dict[str, Any]:
        query = {k: v for k, v in req.params.items() if k != "token"}
        return {
            "rel": "next",
            "href": f"{self.url}{path}?{urlencode({**query, 'token': token})}",
            "type": GEOJSON,
            "method": "GET",
        }

    def _search(self, params: dict[str, Any], problems: list[str], *, page_link: Any) -> Reply:
        problems = problems + stac_search_problems(params)
        if problems:
            return _bad("; ".join(problems))
        token = params.get("token", "o0")
        if not re.fullmatch(r"o\d+", token):
            return _bad(f"token {token!r} did not come from a next link of this API")
        start, limit = int(token[1:]), min(params.get("limit", 10), self.max_limit)
        matched = [s for s in self.published if self._matches(s, params)]
        page = matched[start : start + limit]
        links = [{"rel": "root", "href": f"{self.url}/", "type": "application/json"}]
        if start + limit < len(matched):
            links.append(page_link(f"o{start + limit}"))
        doc = {
            "type": "FeatureCollection",
            "features": [self.item(s) for s in page],
            "links": links,
            "numberMatched": len(matched),
            "numberReturned": len(page),
            "context": {"returned": len(page), "limit": limit, "matched": len(matched)},
        }
        return json_reply(200, doc, content_type=GEOJSON)

    def _matches(self, scene: Scene, params: dict[str, Any]) -> bool:
        if "collections" in params and self.collection_id not in params["collections"]:
            return False
        if "ids" in params and scene.item_id not in params["ids"]:
            return False
        if "bbox" in params:
            bbox = params["bbox"]
            half = len(bbox) // 2
            west, south, east, north = bbox[0], bbox[1], bbox[half], bbox[half + 1]
            boxes = (
                [box(west, south, east, north)]
                if west <= east
                else [box(west, south, 180, north), box(-180, south, east, north)]
            )
            if not any(b.intersects(scene.footprint) for b in boxes):
                return False
        if "intersects" in params and not shape(params["intersects"]).intersects(scene.footprint):
            return False
        if "datetime" in params and not in_interval(scene.datetime, parse_interval(params["datetime"])):
            return False
        props = {**scene_properties(scene), "id": scene.item_id, "collection": self.collection_id}
        if "query" in params and not query_matches(params["query"], props):
            return False
        return not (
            "filter" in params
            and not cql2_matches(compile_filter(params["filter"], params.get("filter-lang")), props)
        )
