"""Request-shape validators: does a request match what the real service documents?

Each ``*_problems`` function returns a list of human-readable problems (empty = valid), so a test
can assert on them and the emulators can answer exactly those problems with HTTP 400: a source
that sends what the real service would refuse fails here too, not only in production.

Documented shapes checked (and where they come from):

* STAC API item search, ``GET|POST /search`` and ``GET /collections/{id}/items``
  (STAC API v1.0.0 item-search README and OpenAPI, https://api.stacspec.org/v1.0.0/item-search):
  ``bbox`` 4 or 6 numbers (lon/lat, CRS84); ``intersects`` a GeoJSON geometry, never together
  with ``bbox``; ``datetime`` an RFC 3339 date-time or interval with ``..`` open ends;
  ``limit`` an integer >= 1 (OGC API Features: larger than the server maximum is not an
  error); ``collections`` / ``ids`` arrays (comma-separated in GET); ``query`` (Query
  extension), ``filter`` + ``filter-lang`` (Filter extension: cql2-json in POST, cql2-text by
  default in GET), ``sortby``, ``fields`` and the paging ``token`` from a ``next`` link.
* Sentinel Hub Process API, ``POST /api/v1/process`` (API reference ProcessRequest schema,
  https://docs.sentinel-hub.com/api/latest/reference/#tag/process, and sentinelhub-py
  ``SentinelHubRequest.body`` / ``input_data`` / ``bounds`` / ``output``): ``input`` and
  ``evalscript`` required; ``input.bounds`` with ``bbox`` (4 numbers) and/or ``geometry`` and
  ``properties.crs`` as an OGC CRS URL; ``input.data[]`` with ``type`` and optional
  ``dataFilter`` (``timeRange.from/to`` RFC 3339, ``maxCloudCoverage`` 0..100,
  ``mosaickingOrder``) and ``processing``; ``output`` with one pair of ``width/height``
  (integers 1..2500) or ``resx/resy``, and ``responses[]`` of ``identifier`` + ``format.type``.
* Sentinel Hub Catalog 1.0.0, ``POST /api/v1/catalog/1.0.0/search``
  (https://docs.sentinel-hub.com/api/latest/api/catalog and its OpenAPI: ``collections``
  exactly one id, ``limit`` 1..100, ``next`` an integer from ``context.next``, ``query``
  replaced by ``filter`` in 1.0.0; sentinelhub-py ``SentinelHubCatalog.search``).
* OAuth2 client credentials token request (RFC 6749 sections 2.3.1 and 4.4; sentinelhub-py
  ``SentinelHubSession._fetch_token`` sends the credentials in the form body).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .filters import QUERY_OPS, FilterError, compile_filter, parse_interval
from .loopback import RecordedRequest

STAC_SEARCH_KEYS = frozenset(
    {"bbox", "intersects", "datetime", "limit", "ids", "collections", "query", "filter", "filter-lang"}
    | {"filter-crs", "sortby", "fields", "token"}
)
STAC_ITEMS_KEYS = frozenset({"bbox", "datetime", "limit", "token"})
GEOJSON_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
CATALOG_KEYS = frozenset(
    {"bbox", "datetime", "intersects", "collections", "ids", "filter", "filter-lang", "filter-crs"}
    | {"fields", "distinct", "limit", "next"}
)
CRS_URL = re.compile(r"http://www\.opengis\.net/def/crs/(EPSG/0/\d+|OGC/1\.3/CRS84)")
MOSAICKING = {"default", "mostRecent", "leastRecent", "leastCC"}
RESAMPLING = {"NEAREST", "BILINEAR", "BICUBIC"}
FORMATS = {"image/tiff", "image/png", "image/jpeg", "application/json"}
TOKEN_PATHS = ("/oauth/token", "/auth/realms/main/protocol/openid-connect/token")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _bbox_problems(
    bbox: Any, *, where: str, lonlat: bool = True, sizes: tuple[int, ...] = (4, 6)
) -> list[str]:
    if not isinstance(bbox, list) or len(bbox) not in sizes or not all(_is_number(v) for v in bbox):
        return [f"{where} must be {' or '.join(map(str, sizes))} numbers, got {bbox!r}"]
    half = len(bbox) // 2
    west, south, east, north = bbox[0], bbox[1], bbox[half], bbox[half + 1]
    problems = []
    if lonlat and not all(-180 <= x <= 180 for x in (west, east)):
        problems.append(f"{where} longitudes must lie in [-180, 180] (is it lon/lat, not UTM metres?)")
    if lonlat and not all(-90 <= y <= 90 for y in (south, north)):
        problems.append(f"{where} latitudes must lie in [-90, 90] (lon/lat order, not lat/lon?)")
    if south > north:
        problems.append(f"{where} south {south} is above north {north}")
    if not lonlat and west >= east:
        problems.append(f"{where} min x {west} is not below max x {east}")
    return problems


def _geometry_problems(geom: Any, *, where: str) -> list[str]:
    if not isinstance(geom, Mapping) or geom.get("type") not in GEOJSON_TYPES | {"GeometryCollection"}:
        return [f"{where} must be a GeoJSON geometry object, got {str(geom)[:80]}"]
    key = "geometries" if geom["type"] == "GeometryCollection" else "coordinates"
    return [] if isinstance(geom.get(key), list) else [f"{where} ({geom['type']}) lacks '{key}'"]


def _datetime_problems(value: Any, *, where: str) -> list[str]:
    try:
        parse_interval(value)
    except FilterError as exc:
        return [f"{where}: {exc}"]
    return []


def stac_get_params(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """A GET search's query string in its POST (JSON) form, and what could not be converted."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in query.items():
        try:
            if key == "bbox":
                out[key] = [float(v) for v in raw.split(",")]
            elif key in ("collections", "ids"):
                out[key] = [v for v in raw.split(",") if v]
            elif key in ("intersects", "query"):
                out[key] = json.loads(raw)
            elif key == "limit":
                out[key] = int(raw)
            elif key == "sortby":
                out[key] = [
                    {"field": f.lstrip("+-"), "direction": "desc" if f.startswith("-") else "asc"}
                    for f in raw.split(",")
                ]
            elif key == "fields":
                parts = raw.split(",")
                out[key] = {
                    "include": [p.lstrip("+") for p in parts if not p.startswith("-")],
                    "exclude": [p[1:] for p in parts if p.startswith("-")],
                }
            else:
                out[key] = raw
        except ValueError as exc:
            problems.append(f"GET parameter {key}={raw!r} is malformed: {exc}")
    return out, problems


def stac_search_problems(params: Any, *, allowed: frozenset[str] = STAC_SEARCH_KEYS) -> list[str]:
    """Problems of an item-search request in POST (JSON) form (use :func:`stac_get_params` for GET)."""
    if not isinstance(params, Mapping):
        return ["search body must be a JSON object"]
    problems = [
        f"unknown search parameter {k!r} (item search knows {sorted(allowed)})"
        for k in params
        if k not in allowed
    ]
    if "bbox" in params:
        problems += _bbox_problems(params["bbox"], where="bbox")
    if "intersects" in params:
        problems += _geometry_problems(params["intersects"], where="intersects")
        if "bbox" in params:
            problems.append("bbox and intersects cannot both be given (STAC API item search)")
    if "datetime" in params:
        problems += _datetime_problems(params["datetime"], where="datetime")
    limit = params.get("limit", 1)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        problems.append(f"limit must be an integer >= 1, got {limit!r}")
    for key in ("collections", "ids"):
        if key in params and not _strings(params[key]):
            problems.append(f"{key} must be an array of non-empty strings, got {params[key]!r}")
    if "query" in params:
        query = params["query"]
        if not isinstance(query, Mapping) or not all(isinstance(v, Mapping) for v in query.values()):
            problems.append('query must map a property to operators, e.g. {"eo:cloud_cover": {"lt": 20}}')
        else:
            problems += [
                f"query operator {op!r} is not one of {sorted(QUERY_OPS)}"
                for v in query.values()
                for op in v
                if op not in QUERY_OPS
            ]
    if "filter-lang" in params and params["filter-lang"] not in ("cql2-text", "cql2-json"):
        problems.append(f"filter-lang must be cql2-text or cql2-json, got {params['filter-lang']!r}")
    elif "filter" in params:
        try:
            compile_filter(params["filter"], params.get("filter-lang"))
        except FilterError as exc:
            problems.append(f"filter: {exc}")
    if "token" in params and not isinstance(params["token"], str):
        problems.append("token must be the string from the previous page's next link")
    if "sortby" in params and not (
        isinstance(params["sortby"], list)
        and all(
            isinstance(s, Mapping) and s.get("direction", "asc") in ("asc", "desc") for s in params["sortby"]
        )
    ):
        problems.append('sortby must be [{"field": ..., "direction": "asc"|"desc"}]')
    return problems


def sh_process_problems(body: Any) -> list[str]:
    """Problems of a Process API request body (see the module docstring for the sources)."""
    if not isinstance(body, Mapping):
        return ["process body must be a JSON object"]
    problems = [
        f"unknown top-level key {k!r} (input, output, evalscript)"
        for k in body
        if k not in ("input", "output", "evalscript")
    ]
    script = body.get("evalscript")
    if not isinstance(script, str) or "evaluatePixel" not in script:
        problems.append("evalscript is required: a string defining evaluatePixel()")
    elif "//VERSION=3" in script and "setup" not in script:
        problems.append("a VERSION=3 evalscript must define setup()")
    inp = body.get("input")
    if not isinstance(inp, Mapping):
        return [*problems, "input is required: {bounds, data}"]
    problems += _bounds_problems(inp.get("bounds"))
    data = inp.get("data")
    if not isinstance(data, list) or not data:
        problems.append("input.data must be a non-empty array")
    else:
        for i, item in enumerate(data):
            problems += _data_problems(item, where=f"input.data[{i}]")
        if len(data) > 1 and len({d.get("id") for d in data if isinstance(d, Mapping)}) != len(data):
            problems.append("several input.data entries need distinct 'id's (data fusion)")
    if "output" in body:
        problems += _output_problems(body["output"])
    return problems


def _bounds_problems(bounds: Any) -> list[str]:
    if not isinstance(bounds, Mapping) or not ("bbox" in bounds or "geometry" in bounds):
        return ["input.bounds must give bbox and/or geometry"]
    crs = (bounds.get("properties") or {}).get("crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    problems = []
    if not (isinstance(crs, str) and CRS_URL.fullmatch(crs)):
        example = "http://www.opengis.net/def/crs/EPSG/0/32721"
        problems.append(f"input.bounds.properties.crs must be an OGC CRS URL such as {example}, got {crs!r}")
    lonlat = isinstance(crs, str) and crs.endswith(("CRS84", "/4326"))
    if "bbox" in bounds:
        problems += _bbox_problems(bounds["bbox"], where="input.bounds.bbox", lonlat=lonlat, sizes=(4,))
    if "geometry" in bounds:
        problems += _geometry_problems(bounds["geometry"], where="input.bounds.geometry")
    return problems


def _data_problems(item: Any, *, where: str) -> list[str]:
    if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
        return [f"{where} must be an object with a collection 'type' such as sentinel-2-l2a"]
    problems = []
    filt = item.get("dataFilter", {})
    if not isinstance(filt, Mapping):
        return [f"{where}.dataFilter must be an object"]
    if "timeRange" in filt:
        rng = filt["timeRange"]
        if not isinstance(rng, Mapping) or not {"from", "to"} <= set(rng):
            problems.append(f"{where}.dataFilter.timeRange needs 'from' and 'to'")
        else:
            problems += _datetime_problems(
                f"{rng['from']}/{rng['to']}", where=f"{where}.dataFilter.timeRange"
            )
    cc = filt.get("maxCloudCoverage", 0)
    if not _is_number(cc) or not 0 <= cc <= 100:
        problems.append(f"{where}.dataFilter.maxCloudCoverage must be a percentage 0..100, got {cc!r}")
    if filt.get("mosaickingOrder", "default") not in MOSAICKING:
        problems.append(f"{where}.dataFilter.mosaickingOrder must be one of {sorted(MOSAICKING)}")
    processing = item.get("processing", {})
    for key in ("upsampling", "downsampling"):
        if isinstance(processing, Mapping) and processing.get(key, "NEAREST") not in RESAMPLING:
            problems.append(f"{where}.processing.{key} must be one of {sorted(RESAMPLING)}")
    return problems


def _output_problems(output: Any) -> list[str]:
    if not isinstance(output, Mapping):
        return ["output must be an object"]
    problems = []
    size = [k for k in ("width", "height") if k in output]
    res = [k for k in ("resx", "resy") if k in output]
    if size and res:
        problems.append("output takes width/height or resx/resy, not both")
    if len(size) == 1 or len(res) == 1:
        problems.append("output width/height (or resx/resy) come as a pair")
    for key in size:
        if not isinstance(output[key], int) or isinstance(output[key], bool) or not 1 <= output[key] <= 2500:
            problems.append(f"output.{key} must be an integer 1..2500, got {output[key]!r}")
    for key in res:
        if not _is_number(output[key]) or output[key] <= 0:
            problems.append(f"output.{key} must be a positive number in CRS units, got {output[key]!r}")
    responses = output.get("responses", [])
    if not isinstance(responses, list):
        return [*problems, "output.responses must be an array"]
    for i, resp in enumerate(responses):
        fmt = resp.get("format", {}).get("type") if isinstance(resp, Mapping) else None
        if not isinstance(resp, Mapping) or not isinstance(resp.get("identifier"), str) or fmt not in FORMATS:
            problems.append(f"output.responses[{i}] needs an identifier and format.type in {sorted(FORMATS)}")
    return problems


def sh_catalog_problems(body: Any) -> list[str]:
    """Problems of a Catalog 1.0.0 search body."""
    if not isinstance(body, Mapping):
        return ["catalog search body must be a JSON object"]
    problems = []
    if "query" in body:
        problems.append("'query' was replaced by 'filter' (CQL2) in Catalog 1.0.0")
    problems += [f"unknown catalog search key {k!r}" for k in body if k not in CATALOG_KEYS | {"query"}]
    if not (_strings(body.get("collections")) and len(body["collections"]) == 1):
        problems.append("collections must hold exactly one collection id, e.g. ['sentinel-2-l2a']")
    if "bbox" in body:
        problems += _bbox_problems(body["bbox"], where="bbox", sizes=(4,))
    if "intersects" in body:
        problems += _geometry_problems(body["intersects"], where="intersects")
    if "datetime" in body:
        problems += _datetime_problems(body["datetime"], where="datetime")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
        problems.append(f"limit must be an integer 1..100, got {limit!r}")
    nxt = body.get("next", 0)
    if not isinstance(nxt, int) or isinstance(nxt, bool) or nxt < 0:
        problems.append(f"next must be the integer from the previous response's context.next, got {nxt!r}")
    if "filter" in body:
        try:
            compile_filter(body["filter"], body.get("filter-lang", "cql2-text"))
        except FilterError as exc:
            problems.append(f"filter: {exc}")
    return problems


def sh_token_problems(req: RecordedRequest) -> list[str]:
    """Problems of an OAuth2 client-credentials token request."""
    if req.method != "POST":
        return [f"the token endpoint takes POST, not {req.method}"]
    problems = []
    if "x-www-form-urlencoded" not in req.headers.get("Content-Type", ""):
        problems.append("token request body must be application/x-www-form-urlencoded")
    form = req.form()
    if form.get("grant_type") != "client_credentials":
        problems.append(f"grant_type must be client_credentials, got {form.get('grant_type')!r}")
    basic = req.headers.get("Authorization", "").startswith("Basic ")
    if not basic and not (form.get("client_id") and form.get("client_secret")):
        problems.append("client_id and client_secret must be in the form body or HTTP Basic auth")
    return problems


def basic_credentials(req: RecordedRequest) -> tuple[str, str] | None:
    """(client_id, client_secret) from an HTTP Basic ``Authorization`` header, if any."""
    auth = req.headers.get("Authorization", "")
    if not auth.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(auth[6:]).decode("utf-8", "replace").partition(":")
    return user, password


def request_problems(req: RecordedRequest) -> list[str]:
    """The problems of any recorded request the validators know (others: none)."""
    body_json = req.method == "POST" and req.path not in TOKEN_PATHS
    try:
        body = req.json() if body_json else None
    except json.JSONDecodeError as exc:
        return [f"body is not JSON: {exc}"]
    if req.path in TOKEN_PATHS:
        return sh_token_problems(req)
    if req.path == "/api/v1/process":
        return sh_process_problems(body)
    if req.path == "/api/v1/catalog/1.0.0/search":
        return sh_catalog_problems(body)
    items = re.fullmatch(r"/collections/[^/]+/items", req.path) is not None
    if req.path == "/search" or items:
        allowed = STAC_ITEMS_KEYS if items else STAC_SEARCH_KEYS
        if req.method == "POST":
            return stac_search_problems(body, allowed=allowed)
        params, problems = stac_get_params(req.params)
        return problems + stac_search_problems(params, allowed=allowed)
    return []


def assert_valid_requests(requests: Iterable[RecordedRequest]) -> None:
    """Fail with every problem of every request (one line each), or return quietly."""
    lines = [f"{r.method} {r.path}: {p}" for r in requests for p in request_problems(r)]
    if lines:
        raise AssertionError("requests do not match the documented shapes:\n" + "\n".join(lines))
