"""Fixtures for ingest tests: a local Sentinel Hub emulator and real-scene helpers.

The emulator is a real HTTP server on 127.0.0.1 (stdlib ``http.server`` in a thread). It
implements the OAuth token endpoint, Catalog search and the Process API; Process answers
are real GeoTIFFs cut from the real Trombetas L2A scene, reprojected onto the requested
bbox / size / CRS. Each endpoint can be told to answer 401, 429 (with Retry-After, ms as
Sentinel Hub sends it), 500 or to stall past the client's timeout, a given number of times.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject

TOKEN = "/oauth/token"
CATALOG = "/api/v1/catalog/1.0.0/search"
PROCESS = "/api/v1/process"


@dataclass
class ShState:
    """What the emulator answers; tests edit ``plan`` and read ``hits``."""

    scene: Path
    dates: list[str] = field(default_factory=lambda: ["2020-03-05T13:55:01Z", "2020-07-23T13:55:09Z"])
    plan: dict[str, list[Any]] = field(default_factory=dict)
    """endpoint -> answers to give before succeeding: 401, 429, 500 or "timeout"."""
    hits: Counter[str] = field(default_factory=Counter)
    stall_s: float = 1.5
    retry_after_ms: int = 50
    bodies: list[dict[str, Any]] = field(default_factory=list)


def _render(state: ShState, payload: dict[str, Any]) -> bytes:
    """A GeoTIFF like Sentinel Hub's: requested bands x 10000 (uint16), SCL, dataMask."""
    bounds = payload["input"]["bounds"]
    epsg = int(str(bounds["properties"]["crs"]).rstrip("/").split("/")[-1])
    left, bottom, right, top = bounds["bbox"]
    width, height = int(payload["output"]["width"]), int(payload["output"]["height"])
    script = payload["evalscript"]
    setup = json.loads(re.search(r"return (\{.*?\});\s*\}", script, re.S).group(1))  # type: ignore[union-attr]
    names = setup["input"][0]["bands"]
    transform = Affine((right - left) / width, 0, left, 0, -(top - bottom) / height, top)
    with rasterio.open(state.scene) as src:
        descr = list(src.descriptions)
        out = np.zeros((len(names), height, width), dtype=np.uint16)
        dst = np.zeros((src.count, height, width), dtype=np.uint16)
        reproject(
            src.read(),
            dst,
            src_transform=src.transform,
            src_crs=src.crs,
            src_nodata=0,
            dst_transform=transform,
            dst_crs=f"EPSG:{epsg}",
            dst_nodata=0,
            resampling=Resampling.nearest,
        )
    data = dst[0] > 0
    # harmonised L2A values (BOA_ADD_OFFSET removed), as the Process API returns by default
    refl = {
        n: np.where(data, dst[i].astype(np.int32) - 1000, 0).clip(0).astype(np.uint16)
        for i, n in enumerate(descr)
    }
    water = (refl["B03"].astype(float) - refl["B11"]) / np.maximum(
        refl["B03"].astype(float) + refl["B11"], 1
    ) > 0
    for k, name in enumerate(names):
        if name == "SCL":
            out[k] = np.where(data, np.where(water, 6, 4), 0)
        elif name == "dataMask":
            out[k] = data
        else:
            out[k] = refl[name]
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": len(names),
        "dtype": "uint16",
        "crs": f"EPSG:{epsg}",
        "transform": transform,
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst_ds:
            dst_ds.write(out)
        return bytes(mem.read())


def _handler(state: ShState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests): that is the point

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            path = self.path.split("?")[0]
            state.hits[path] += 1
            planned = state.plan.get(path) or []
            answer = planned.pop(0) if planned else 200
            if answer == "timeout":
                time.sleep(state.stall_s)
                answer = 200
            if answer == 401:
                if path == TOKEN:
                    return self._send(
                        401, b'{"error":"invalid_client","error_description":"Invalid client credentials"}'
                    )
                return self._send(
                    401, b'{"error":{"status":401,"reason":"Unauthorized","message":"Token expired"}}'
                )
            if answer == 429:
                return self._send(
                    429,
                    b'{"error":{"status":429,"reason":"Too Many Requests"}}',
                    Retry_After=str(state.retry_after_ms),
                )
            if answer == 500:
                return self._send(500, b'{"error":{"status":500,"reason":"Internal Server Error"}}')
            if path == TOKEN:
                body = {
                    "access_token": "aaa.eyJzdWIiOiJ0ZXN0In0.sig",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }
                return self._send(200, json.dumps(body).encode())
            payload = json.loads(raw or b"{}")
            state.bodies.append({"path": path, **payload})
            if path == CATALOG:
                feats = [
                    {"type": "Feature", "id": f"S2_{d}", "properties": {"datetime": d, "eo:cloud_cover": 3.0}}
                    for d in state.dates
                ]
                return self._send(
                    200,
                    json.dumps(
                        {
                            "type": "FeatureCollection",
                            "features": feats,
                            "context": {"limit": 100, "returned": len(feats)},
                        }
                    ).encode(),
                )
            if path == PROCESS:
                return self._send(200, _render(state, payload), "image/tiff")
            return self._send(404, b'{"error":"not found"}')

    return Handler


@pytest.fixture
def sh_server(sample_data: Path) -> Iterator[tuple[str, ShState]]:
    """(base_url, state) of a running Sentinel Hub emulator on 127.0.0.1."""
    state = ShState(scene=sample_data / "imagery" / "trombetas_s2_l2a.tif")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
