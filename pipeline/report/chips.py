"""Small before/after image chips for flag popups: RGB arrays -> PNG data URIs.

PNG is encoded with the standard library (zlib) so the report needs no imaging package.
The display stretch (2-98 percentile per chip) is rendering, not analysis.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np


def _png(rgb: np.ndarray) -> bytes:
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def stretch(rgb: np.ndarray, *, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Reflectance ``(y, x, 3)`` -> uint8 with a per-chip percentile stretch; NaN is black."""
    values = rgb[np.isfinite(rgb)]
    if values.size == 0:
        return np.zeros(rgb.shape, dtype=np.uint8)
    lo, hi = np.percentile(values, [low, high])
    scaled = np.clip((rgb - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
    return np.nan_to_num(scaled * 255.0, nan=0.0).astype(np.uint8)


def chip_data_uri(rgb: np.ndarray, *, scale: tuple[float, float] | None = None) -> str:
    """``data:image/png;base64,...`` of a reflectance chip ``(y, x, 3)``.

    ``scale`` (low, high reflectance) stretches a before/after pair alike, so a change of
    colour between them is real and not an artefact of two stretches.
    """
    if scale is None:
        img = stretch(rgb)
    else:
        lo, hi = scale
        img = np.nan_to_num(np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1) * 255.0, nan=0.0).astype(np.uint8)
    return "data:image/png;base64," + base64.b64encode(_png(np.ascontiguousarray(img))).decode("ascii")


def pair_scale(*chips: np.ndarray) -> tuple[float, float]:
    """One 2-98 percentile stretch for several chips of the same place."""
    values = np.concatenate([c[np.isfinite(c)] for c in chips]) if chips else np.array([])
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(values, [2.0, 98.0])
    return float(lo), float(hi)
