"""A Sentinel Hub emulator: OAuth2 token, Catalog 1.0.0 search and Process API, on the gold-mine patches.

Why: the Sentinel Hub source must be tested with the real sentinelhub-py client (its OAuth
session, retries on 429 / 5xx with ``Retry-After`` in milliseconds, timeouts, catalog paging)
and against real pixels, without the internet or an account.

Endpoints (paths as sentinelhub-py 3.x builds them from ``SHConfig``):

* ``POST /oauth/token`` (``sh_token_url = base + "/oauth/token"``, also what the deprecated
  ``sh_auth_base_url`` expands to) and the production path
  ``/auth/realms/main/protocol/openid-connect/token``: client credentials in the form body or
  HTTP Basic; wrong ones get 401 ``invalid_client`` (RFC 6749 section 5.2).
* ``POST /api/v1/catalog/1.0.0/search`` (``SentinelHubCatalog``): collections, bbox /
  intersects, datetime, ids, CQL2 ``filter``, ``limit`` 1..100, paging by integer ``next`` in
  ``context``, ``distinct: "date"`` and ``fields`` include/exclude.
* ``POST /api/v1/process`` (``SentinelHubRequest``): see :mod:`.sh_process`.

API calls need ``Authorization: Bearer <token>`` from the token endpoint; :meth:`expire_tokens`
makes every issued token stale (401, as an expired token gets). Faults: :meth:`fail_next`
(401, 429 with ``Retry-After`` in ms, 500, ...) and :meth:`stall_next` (past a client timeout).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from typing import Any

from shapely.geometry import box, mapping, shape

from .filters import compile_filter, cql2_matches, in_interval, parse_interval
from .loopback import LoopbackServer, RecordedRequest, Reply, json_reply
from .scenes import Publication, Publishing, Scene, SceneLibrary, load_library, scene_properties
from .sh_process import ProcessError, render
from .shapes import TOKEN_PATHS, basic_credentials, sh_catalog_problems, sh_process_problems

TOKEN = "/oauth/token"
COLLECTION = "sentinel-2-l2a"
OIDC_TOKEN = "/auth/realms/main/protocol/openid-connect/token"
CATALOG_SEARCH = "/api/v1/catalog/1.0.0/search"
PROCESS = "/api/v1/process"
CATALOG_ITEMS = f"/api/v1/catalog/1.0.0/collections/{COLLECTION}/items"
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def sh_error(status: int, message: str, *, code: str = "COMMON_EXCEPTION", **headers: str) -> Reply:
    """An error body the way Sentinel Hub's APIs write it."""
    err = {"status": status, "reason": REASONS.get(status, "Error"), "message": message, "code": code}
    return json_reply(status, {"error": err}, **headers)


def _jwt(payload: dict[str, Any]) -> str:
    """A JWT-shaped token whose payload sentinelhub-py can decode (``SentinelHubSession.info``).

    The client decodes with the standard alphabet after padding ``len % 4`` '=', which is right
    only when no padding is needed, so the JSON gets trailing spaces (at most two) until none is.
    """
    text = json.dumps(payload)
    while len(text.encode()) % 3:
        text += " "
    encoded = base64.b64encode(text.encode()).decode()
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    return f"{header}.{encoded}.emulated"


class SentinelHubServer(Publishing, LoopbackServer):
    """The Sentinel Hub emulator: point ``SHConfig.sh_base_url`` at ``url``, ``sh_token_url`` at ``token_url``.

    Parameters
    ----------
    library
        The scenes it can publish (default: the shared gold_mining_patches).
    client_id, client_secret
        The only credentials the token endpoint accepts.
    token_ttl_s
        ``expires_in`` of issued tokens (sentinelhub-py refreshes before expiry).
    """

    name = "sentinelhub"

    def __init__(
        self,
        library: SceneLibrary | None = None,
        *,
        client_id: str = "asm-test-client",
        client_secret: str = "asm-test-secret",
        token_ttl_s: int = 3600,
        delay_s: float = 0.0,
    ) -> None:
        super().__init__(delay_s=delay_s)
        self.library = library or load_library()
        self.publication = Publication(self.library)
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl_s = token_ttl_s
        self._tokens: dict[str, float] = {}
        self._token_lock = threading.Lock()

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN}"

    def config(self, **overrides: Any) -> Any:
        """An ``SHConfig`` for this server (no config file read), quick to retry and time out in tests."""
        from sentinelhub import SHConfig

        fields: dict[str, Any] = {
            "sh_client_id": self.client_id,
            "sh_client_secret": self.client_secret,
            "sh_base_url": self.url,
            "sh_token_url": self.token_url,
            "max_download_attempts": 3,
            "download_sleep_time": 0.05,
            "download_timeout_seconds": 5.0,
        }
        return SHConfig(use_defaults=True, **{**fields, **overrides})

    def data_collection(self) -> Any:
        """``DataCollection.SENTINEL2_L2A`` pinned to this server: sentinelhub-py sends each predefined
        collection to its own deployment URL, so a custom base URL needs ``define_from``."""
        from sentinelhub import DataCollection

        port = self.url.rsplit(":", 1)[1]
        return DataCollection.SENTINEL2_L2A.define_from(f"ASM_EMULATED_S2L2A_{port}", service_url=self.url)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (401), like an expired one."""
        with self._token_lock:
            self._tokens.clear()

    @property
    def issued_tokens(self) -> int:
        with self._token_lock:
            return len(self._tokens)

    def fault_reply(self, req: RecordedRequest, status: int, retry_after_s: float | None) -> Reply:
        headers = {} if retry_after_s is None else {"Retry-After": str(round(retry_after_s * 1000))}
        if req.path in TOKEN_PATHS and status == 401:
            return json_reply(
                401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
            )
        messages = {401: "Token expired or invalid", 429: "You have exceeded your rate limit"}
        code = {401: "COMMON_UNAUTHORIZED", 429: "RATE_LIMIT_EXCEEDED"}.get(status, "COMMON_EXCEPTION")
        return sh_error(status, messages.get(status, "injected fault"), code=code, **headers)

    # routing ---------------------------------------------------------------------------------
    def route(self, req: RecordedRequest) -> Reply:
        if req.path in TOKEN_PATHS:
            return self._token(req) if req.method == "POST" else sh_error(405, "use POST")
        if req.path not in (CATALOG_SEARCH, PROCESS):
            return sh_error(404, f"no route for {req.path}", code="COMMON_NOT_FOUND")
        if req.method != "POST":
            return sh_error(405, f"{req.path} takes POST")
        if not self._authorised(req):
            return sh_error(401, "Token expired or invalid", code="COMMON_UNAUTHORIZED")
        try:
            body = req.json()
        except ValueError as exc:
            return sh_error(400, f"body is not JSON: {exc}", code="COMMON_BAD_PAYLOAD")
        if req.path == CATALOG_SEARCH:
            return self._catalog(body)
        return self._process(body)

    def _token(self, req: RecordedRequest) -> Reply:
        form = req.form()
        if form.get("grant_type") != "client_credentials":
            return json_reply(
                400, {"error": "unsupported_grant_type", "error_description": "use client_credentials"}
            )
        given = basic_credentials(req) or (form.get("client_id", ""), form.get("client_secret", ""))
        if not (
            secrets.compare_digest(given[0], self.client_id)
            and secrets.compare_digest(given[1], self.client_secret)
        ):
            return json_reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client or Invalid client credentials",
                },
            )
        now = time.time()
        token = _jwt(
            {
                "sub": given[0],
                "azp": given[0],
                "iat": int(now),
                "exp": int(now) + self.token_ttl_s,
                "jti": secrets.token_hex(8),
            }
        )
        with self._token_lock:
            self._tokens[token] = now + self.token_ttl_s
        return json_reply(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_ttl_s,
                "refresh_expires_in": 0,
                "not-before-policy": 0,
                "scope": "email profile",
            },
        )

    def _authorised(self, req: RecordedRequest) -> bool:
        auth = req.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with self._token_lock:
            return token in self._tokens and self._tokens[token] > time.time()

    # catalog ---------------------------------------------------------------------------------
    def feature(self, scene: Scene) -> dict[str, Any]:
        """A Catalog 1.0.0 feature of a scene (assets point at S3 there, so here too)."""
        props = {
            k: v
            for k, v in scene_properties(scene).items()
            if not k.startswith("asm:") or k == "asm:sample_id"
        }
        return {
            "stac_version": "1.0.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
                "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            ],
            "type": "Feature",
            "id": scene.item_id,
            "collection": COLLECTION,
            "bbox": list(scene.lonlat_bbox),
            "geometry": mapping(scene.footprint),
            "properties": props,
            "assets": {
                "data": {
                    "href": f"s3://emulated-sentinel-s2-l2a/{scene.item_id}",
                    "title": "s3",
                    "type": "inode/directory",
                }
            },
            "links": [{"rel": "self", "href": f"{self.url}{CATALOG_ITEMS}/{scene.item_id}"}],
        }

    def _catalog(self, body: Any) -> Reply:
        problems = sh_catalog_problems(body)
        if problems:
            return sh_error(400, "; ".join(problems), code="COMMON_BAD_PAYLOAD")
        matched = [s for s in self.published if self._catalog_match(s, body)]
        start, limit = int(body.get("next", 0)), int(body.get("limit", 10))
        if body.get("distinct") == "date":
            dates = sorted({s.datetime.date().isoformat() for s in matched})
            page: list[Any] = dates[start : start + limit]
            total = len(dates)
        elif "distinct" in body:
            return sh_error(
                400,
                f"distinct {body['distinct']!r}: the emulator knows 'date' only",
                code="COMMON_BAD_PAYLOAD",
            )
        else:
            page = [_fields(self.feature(s), body.get("fields")) for s in matched[start : start + limit]]
            total = len(matched)
        context: dict[str, Any] = {"limit": limit, "returned": len(page)}
        links: list[dict[str, Any]] = []
        if start + limit < total:
            context["next"] = start + limit
            links.append(
                {
                    "rel": "next",
                    "href": f"{self.url}{CATALOG_SEARCH}",
                    "method": "POST",
                    "body": {"next": start + limit},
                    "merge": True,
                }
            )
        doc = {"type": "FeatureCollection", "features": page, "links": links, "context": context}
        return json_reply(200, doc, content_type="application/geo+json")

    def _catalog_match(self, scene: Scene, body: dict[str, Any]) -> bool:
        if body["collections"][0] != COLLECTION:
            return False
        if "ids" in body and scene.item_id not in body["ids"]:
            return False
        if "bbox" in body and not box(*body["bbox"]).intersects(scene.footprint):
            return False
        if "intersects" in body and not shape(body["intersects"]).intersects(scene.footprint):
            return False
        if "datetime" in body and not in_interval(scene.datetime, parse_interval(body["datetime"])):
            return False
        if "filter" not in body:
            return True
        expr = compile_filter(body["filter"], body.get("filter-lang", "cql2-text"))
        return cql2_matches(expr, {**scene_properties(scene), "id": scene.item_id})

    # process ---------------------------------------------------------------------------------
    def _process(self, body: Any) -> Reply:
        problems = sh_process_problems(body)
        if problems:
            return sh_error(400, "; ".join(problems), code="COMMON_BAD_PAYLOAD")
        try:
            tiff, mode, used = render(body, self.published)
        except ProcessError as exc:
            return sh_error(400, str(exc), code="RENDERER_EXCEPTION")
        out = body.get("output") or {}
        units = max(0.005, out.get("width", 256) * out.get("height", 256) / 512**2)
        headers = {
            "x-processingunits-spent": f"{units:.4f}",
            "X-Emulator-Evaluation": mode,
            "X-Emulator-Scenes": str(used),
        }
        return Reply(200, tiff, "image/tiff", headers)


def _fields(feature: dict[str, Any], fields: Any) -> dict[str, Any]:
    """The Fields extension, simply: ``include`` keeps id, type and the listed dotted paths;
    ``exclude`` drops dotted paths."""
    if not isinstance(fields, dict):
        return feature
    out = feature
    if fields.get("include"):
        out = {"id": feature["id"], "type": feature["type"]}
        for path in fields["include"]:
            head, _, tail = path.partition(".")
            if head in feature and tail and isinstance(feature[head], dict) and tail in feature[head]:
                out.setdefault(head, {})[tail] = feature[head][tail]
            elif head in feature and not tail:
                out[head] = feature[head]
    for path in fields.get("exclude") or []:
        head, _, tail = path.partition(".")
        if tail and isinstance(out.get(head), dict):
            out[head] = {k: v for k, v in out[head].items() if k != tail}
        elif not tail:
            out = {k: v for k, v in out.items() if k != head}
    return out
