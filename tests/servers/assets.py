"""The STAC assets: one single-band COG per scene and band, written on publish and served with
HTTP byte ranges by :mod:`.file_server` in a child process (see there for why not a thread).

Files are written in the caller's thread when scenes are published (about 2 ms each, so
``publish_all`` of 1150 scenes takes ~12 s) and removed when they are withdrawn, so an
unpublished asset answers 404 just like an unpublished item.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import rasterio

from .loopback import RecordedRequest
from .scenes import BANDS, Scene

FILE_SERVER = Path(__file__).with_name("file_server.py")


class AssetHost:
    """Writes the band COGs under ``folder`` and serves them at ``{url}/assets/...``."""

    def __init__(self, folder: Path | None = None) -> None:
        self._tmp = None if folder else tempfile.TemporaryDirectory(prefix="asm-stac-assets-")
        self.folder = Path(folder or self._tmp.name)  # type: ignore[union-attr]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = self.folder / "requests.jsonl"
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        """Start the child server and wait for the URL it prints."""
        (self.folder / "files").mkdir(exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, str(FILE_SERVER), str(self.folder / "files"), str(self._log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._proc = proc
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the asset file server did not start (printed {line!r}); see stderr above")
        self.url = line

    def stop(self) -> None:
        """Close the child's stdin (it exits), wait, kill if it hangs; remove a temporary folder."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout:
                proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def path(self, collection: str, scene: Scene, key: str) -> Path:
        return self.folder / "files" / collection / scene.item_id / f"{key}.tif"

    def href(self, collection: str, scene: Scene, key: str) -> str:
        return f"{self.url}/assets/{collection}/{scene.item_id}/{key}.tif"

    def write(self, collection: str, scene: Scene, keys: dict[str, str]) -> None:
        """The COGs of ``scene``: ``keys`` maps asset key -> band (raw DN, nodata 0, 16 px tiles)."""
        data = scene.read()
        for key, band in keys.items():
            path = self.path(collection, scene, key)
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            profile = {
                "driver": "COG",
                "width": scene.shape[1],
                "height": scene.shape[0],
                "count": 1,
                "dtype": "uint16",
                "nodata": 0,
                "crs": f"EPSG:{scene.epsg}",
                "transform": scene.transform,
                "blocksize": 16,
                "compress": "deflate",
                "overviews": "none",
            }
            part = path.with_suffix(".part")
            with rasterio.open(part, "w", **profile) as dst:
                dst.write(
                    data[BANDS.index(band)], 1
                )  # no GDAL scale tag: raster:bands says it, as on Earth Search
            part.rename(path)

    def remove(self, collection: str, scene: Scene) -> None:
        shutil.rmtree(self.folder / "files" / collection / scene.item_id, ignore_errors=True)

    def _lines(self) -> list[dict[str, Any]]:
        if not self._log.exists():
            return []
        return [
            json.loads(line) for line in self._log.read_text(encoding="utf-8").splitlines() if line.strip()
        ]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every asset request so far (HEAD and ranged GETs from GDAL), in arrival order."""
        out = []
        for line in self._lines():
            req = RecordedRequest(line["method"], line["path"], line["query"], line["headers"], b"")
            req.status = int(line["status"])
            out.append(req)
        return out

    @property
    def errors(self) -> list[str]:
        """Tracebacks the child recorded (an emulator bug, not a client one)."""
        return [str(e) for line in self._lines() for e in line.get("errors") or []]
