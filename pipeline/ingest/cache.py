"""A content-checked download cache: one file per request fingerprint.

Each entry is ``<root>/<namespace>/<fp[:2]>/<fp>.<ext>`` plus ``<fp>.<ext>.sha256`` holding the
SHA-256 of the bytes. Writes go to a temporary file renamed into place, so a crash leaves no
half entry; a read whose bytes do not match their hash (truncated, edited, bit rot) is a
miss, and the caller fetches again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def fingerprint(request: Any) -> str:
    """SHA-256 (hex) of a JSON-serialisable request description (keys sorted)."""
    blob = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class DiskCache:
    """Bytes keyed by fingerprint under ``root/namespace``."""

    def __init__(self, root: Path, *, namespace: str, ext: str = "bin") -> None:
        self.root = Path(root) / namespace
        self.ext = ext

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists)."""
        return self.root / key[:2] / f"{key}.{self.ext}"

    def get(self, key: str) -> Path | None:
        """The entry's path if present and intact, else None (a damaged entry is removed)."""
        path = self.path(key)
        side = path.with_name(path.name + ".sha256")
        if not path.is_file():
            return None
        try:
            expected = side.read_text(encoding="ascii").strip()
        except OSError:
            expected = ""
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            log.warning("cache entry %s is damaged (hash mismatch); fetching it again", path.name)
            path.unlink(missing_ok=True)
            side.unlink(missing_ok=True)
            return None
        return path

    def put(self, key: str, data: bytes) -> Path:
        """Store ``data`` atomically and return its path."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, payload in (
            (path, data),
            (path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode()),
        ):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return path
