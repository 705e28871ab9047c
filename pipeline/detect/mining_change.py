"""The gold-mining change detector: where did mining appear or grow between a *before*
and an *after* view of the same ground?

Windows of ``window_px`` (48 px = 480 m) at a stride of ``stride_px`` (24 px) are scored by a
scikit-learn model on features of both dates and their change
(:mod:`pipeline.detect.window_features`); inside windows scoring at or above the model's
threshold, the pixels that lost vegetation to bare ground or water are mining
(:func:`~pipeline.detect.window_pixels.mining_footprint`). Only windows lying wholly inside
the scene are scored, so a 48 x 48 px site patch is exactly one window.

One code path: :func:`mining_change` runs :func:`change_block` on the whole array (numpy)
or on every dask chunk with a margin of ``window_px - stride_px`` pixels, which holds every
window that covers the chunk's pixels, so both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage
from threadpoolctl import threadpool_limits

from pipeline.core.errors import ModelError, RasterError
from pipeline.detect.window_features import BANDS, pixel_valid, scene_window_features
from pipeline.detect.window_pixels import mining_footprint

_CROSS = np.ones((3, 3), dtype=bool)
#: Offset that marks a mining pixel in the packed output (score + MINING_CODE).
MINING_CODE = np.float32(2.0)


@dataclass(frozen=True, kw_only=True)
class MiningDetector:
    """A fitted window classifier and how it is applied."""

    estimator: Any
    """Fitted scikit-learn binary classifier (``predict_proba[:, 1]`` = mining)."""
    features: tuple[str, ...]
    """Feature names in the estimator's column order."""
    threshold: float
    """Window score at or above which a window is mining (chosen on training folds)."""
    window_px: int = 48
    stride_px: int = 24
    min_valid_fraction: float = 0.3
    """Windows with fewer pixels valid at both dates are not scored."""
    cloud_dilate_px: int = 2
    sensor: str = "sentinel2"

    @property
    def margin_px(self) -> int:
        """Pixels beyond a chunk that the windows covering it reach."""
        return self.window_px - self.stride_px


def window_scores(features: np.ndarray, *, detector: MiningDetector) -> np.ndarray:
    """Mining probability of each feature row (columns in ``detector.features`` order); NaN
    for windows without a score (every feature NaN: too few valid pixels). Single NaN
    features (no water in the window, so no water colour) are the model's to handle."""
    ok = ~np.isnan(features).all(axis=1)
    out = np.full(len(features), np.nan, dtype=np.float32)
    if ok.any():
        # one thread: on a few hundred windows OpenMP start-up costs more than it saves
        with threadpool_limits(1):
            out[ok] = detector.estimator.predict_proba(features[ok])[:, 1]
    return out


def change_block(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    detector: MiningDetector,
    origin: tuple[int, int],
    scene_shape: tuple[int, int],
) -> np.ndarray:
    """Packed result of one block with its margin: score (0-1) of the best window covering
    each pixel, plus :data:`MINING_CODE` on mining pixels, NaN where no window scored or
    the pixel is invalid; margins trimmed.

    Parameters
    ----------
    before, after
        float32 ``(6, y, x)`` reflectance 0-1 in :data:`BANDS` order, the block plus
        ``detector.margin_px`` on each side (NaN outside the scene).
    valid
        bool ``(y, x)``: valid at both dates, same extent.
    origin
        Scene row / column of the first pixel of the extended block (may be negative).
    scene_shape
        Rows and columns of the whole scene: windows reaching beyond it are not scored.
    """
    win, stride, m = detector.window_px, detector.stride_px, detector.margin_px
    names, feats, origins, _ = scene_window_features(
        before, after, valid=valid, window=win, stride=stride, min_valid=detector.min_valid_fraction
    )
    missing = [f for f in detector.features if f not in names]
    if missing:
        raise ModelError(f"The detector needs features {missing} this code does not compute. Retrain it.")
    feats = feats[:, [names.index(f) for f in detector.features]]
    rows, cols = origins[:, 0] + origin[0], origins[:, 1] + origin[1]
    inside = (rows >= 0) & (cols >= 0) & (rows + win <= scene_shape[0]) & (cols + win <= scene_shape[1])
    # windows sit on the scene's stride grid whatever block they are computed in
    inside &= (rows % stride == 0) & (cols % stride == 0)
    scores = window_scores(feats[inside], detector=detector)
    best = np.full(valid.shape, np.nan, dtype=np.float32)
    for (r, c), s in zip(origins[inside], scores, strict=True):
        if np.isfinite(s):
            cell = best[r : r + win, c : c + win]
            np.fmax(cell, s, out=cell)
    # a 3 x 3 closing joins the pits and ponds of one working that single bare pixels and
    # strips of vegetation split into specks below the mapping unit
    footprint = ndimage.binary_closing(mining_footprint(before, after, valid=valid), structure=_CROSS)
    mining = footprint & valid & (best >= detector.threshold)
    packed = np.where(valid, best + mining * MINING_CODE, np.float32(np.nan)).astype(np.float32)
    h, w = valid.shape
    return packed[m : h - m, m : w - m]


def extended_block(
    before: np.ndarray,
    after: np.ndarray,
    *,
    detector: MiningDetector,
    origin: tuple[int, int],
    scene_shape: tuple[int, int],
) -> np.ndarray:
    """:func:`change_block` of a block extended by ``margin_px + cloud_dilate_px`` on each
    side: the cloud mask is dilated here, then the dilation's own margin is dropped, so a
    block's valid pixels equal the whole scene's. ``origin`` is the scene position of the
    first pixel after that drop."""
    d = detector.cloud_dilate_px
    valid = pixel_valid(before, cloud_dilate=d) & pixel_valid(after, cloud_dilate=d)
    if d:
        before, after, valid = before[:, d:-d, d:-d], after[:, d:-d, d:-d], valid[d:-d, d:-d]
    return change_block(before, after, valid, detector=detector, origin=origin, scene_shape=scene_shape)


def _stack(view: xr.Dataset, *, name: str) -> xr.DataArray:
    missing = [b for b in BANDS if b not in view]
    if missing:
        raise RasterError(f"The {name} view lacks bands {missing}; the detector needs {list(BANDS)}.")
    return view[list(BANDS)].to_array("band").transpose("band", "y", "x").astype(np.float32)


def mining_change(before: xr.Dataset, after: xr.Dataset, *, detector: MiningDetector) -> xr.Dataset:
    """Where gold mining appeared or grew between two views of the same grid (lazy on
    dask input, immediate on numpy input).

    Parameters
    ----------
    before, after
        Variables ``blue, green, red, nir, swir1, swir2`` (surface reflectance 0-1, NaN =
        nodata or cloud), dims ``("y", "x")`` on one grid.

    Returns
    -------
    xr.Dataset
        Dims ``("y", "x")``: ``score`` (float32, best window score 0-1, NaN where no window
        was scored), ``mining`` (bool), ``valid`` (bool: usable at both dates).
    """
    b, a = _stack(before, name="before"), _stack(after, name="after")
    if b.shape != a.shape:
        raise RasterError(f"before {b.shape} and after {a.shape} must share one grid; reproject one.")
    packed = _packed(b.data, a.data, detector=detector)
    coords = {k: v for k, v in b.coords.items() if k in ("y", "x", "spatial_ref")}
    out = xr.Dataset(
        {name: (("y", "x"), _decoded(packed, name)) for name in ("score", "mining", "valid")},
        coords=coords,
    )
    return out.assign_attrs(before.attrs)


def _decode(packed: np.ndarray, name: str) -> np.ndarray:
    mining = packed >= MINING_CODE
    if name == "mining":
        return mining
    if name == "valid":
        return ~np.isnan(packed)
    return (packed - mining * MINING_CODE).astype(np.float32)


def _decoded(packed: Any, name: str) -> Any:
    """One variable of the packed result; each its own block-wise step (deriving the three
    with array arithmetic on one dask result made dask's graph optimisation drop a layer
    when several places were computed together)."""
    if not isinstance(packed, da.Array):
        return _decode(packed, name)
    dtype = np.float32 if name == "score" else bool
    return da.map_blocks(_decode, packed, name, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))


def _packed(before: Any, after: Any, *, detector: MiningDetector) -> Any:
    shape = (int(before.shape[1]), int(before.shape[2]))
    m = detector.margin_px
    reach = m + detector.cloud_dilate_px
    if not isinstance(before, da.Array):
        pad = ((0, 0), (reach, reach), (reach, reach))
        return extended_block(
            np.pad(np.asarray(before, dtype=np.float32), pad, constant_values=np.nan),
            np.pad(np.asarray(after, dtype=np.float32), pad, constant_values=np.nan),
            detector=detector,
            origin=(-m, -m),
            scene_shape=shape,
        )
    chunks = tuple(_aligned(c, detector.stride_px, reach=reach) for c in before.chunks[1:])
    depth, edge = {0: 0, 1: reach, 2: reach}, {0: "none", 1: np.nan, 2: np.nan}
    ext_b = da.overlap.overlap(before.rechunk((-1, *chunks)), depth=depth, boundary=edge)
    ext_a = da.overlap.overlap(after.rechunk((-1, *chunks)), depth=depth, boundary=edge)
    starts = [np.cumsum((0, *c[:-1])) for c in chunks]

    def block(bb: np.ndarray, aa: np.ndarray, block_info: Any = None) -> np.ndarray:
        _, i, j = block_info[0]["chunk-location"]
        origin = (int(starts[0][i]) - m, int(starts[1][j]) - m)
        return extended_block(bb, aa, detector=detector, origin=origin, scene_shape=shape)

    return da.map_blocks(
        block,
        ext_b,
        ext_a,
        drop_axis=0,
        chunks=chunks,
        dtype=np.float32,
        meta=np.empty((0, 0), dtype=np.float32),
    )


def _aligned(chunks: tuple[int, ...], step: int, *, reach: int) -> tuple[int, ...]:
    """Chunk sizes rounded to multiples of ``step`` so every chunk starts on the window
    grid; a remainder shorter than the overlap ``reach`` joins the last chunk (dask cannot
    overlap a chunk by more than its size)."""
    total, size = sum(chunks), max(step, (max(chunks) // step) * step, reach // step * step + step)
    out = [size] * (total // size)
    rest = total % size
    if rest and out and rest < reach:
        out[-1] += rest
    elif rest:
        out.append(rest)
    return tuple(out)
