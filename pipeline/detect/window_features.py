"""Window features for two-date artisanal gold-mining change detection (pure numpy).

Inputs everywhere are surface-reflectance cubes as ``float32`` arrays of shape
``(band, y, x)`` with the band order ``BANDS = (blue, green, red, nir, swir1, swir2)``
(Sentinel-2 B02 B03 B04 B08 B11 B12), reflectance 0-1 (i.e. DN / 10000 for a product
without offset), 10 m pixels. ``before`` is the earlier composite, ``after`` the later one.
No date, season or window length enters any feature.

Pixel validity
    ``pixel_valid(img)`` is False where any band is 0 / non-finite (nodata) or the pixel is
    a bright *white* cloud: ``blue > 0.15`` **and** ``blue / red > 0.8``. The whiteness test
    matters: bright tailings sand in active mines reaches ``blue`` 0.15-0.20 but has
    ``blue / red`` ~ 0.5-0.65, while clouds are flat (``blue / red`` ~ 1). Cloud pixels
    are dilated by ``cloud_dilate`` px (square) to drop hazy cloud edges. Features use only
    pixels valid at both dates (``valid_pair``).

Windows
    A scene is cut into square blocks of ``stride`` px; a window is ``window // stride``
    blocks on a side, so every statistic is computed once per block and summed over the
    blocks of each window (sums, fixed-bin histograms, pixel-pair and 2x2 counts with the
    window's own boundary handled exactly). ``window_features`` on a single 48 x 48 patch
    and ``scene_window_features`` on the same pixels inside a scene give identical numbers.
    Quantiles come from fixed-bin histograms (linear interpolation inside a bin), so they
    are exact to the bin width (``HIST_BINS`` over each index's range, ~0.02-0.03).

Windows with fewer than ``min_valid`` (fraction, default 0.3) pixels valid at both dates
get all-NaN features; the caller should treat them as "no score".
"""

from __future__ import annotations

import numpy as np

from pipeline.detect.window_blocks import WindowBlocks, hist_quantiles, pair_stats
from pipeline.detect.window_pixels import (
    BANDS,
    HIST_BINS,
    HIST_SPECS,
    QUANTILES,
    pixel_indices,
    pixel_valid,
    refine_from_indices,
    refine_pixels,
    valid_pair,
)

__all__ = ["BANDS", "pixel_valid", "refine_pixels", "scene_window_features", "valid_pair", "window_features"]


# ======================================================================== features ===
def _feature_core(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    window: int,
    stride: int,
    min_valid: float,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    if before.shape != after.shape or before.ndim != 3 or before.shape[0] != 6:
        raise ValueError(f"before/after must both be (6, y, x); got {before.shape}, {after.shape}")
    if valid.shape != before.shape[1:]:
        raise ValueError(f"valid must be (y, x) = {before.shape[1:]}; got {valid.shape}")
    if window % stride:
        raise ValueError(f"window ({window}) must be a multiple of stride ({stride})")
    before = before.astype(np.float32, copy=False)
    after = after.astype(np.float32, copy=False)
    valid = valid.astype(bool, copy=False)
    blk = WindowBlocks(valid.shape, stride, window // stride)
    i0, i1 = pixel_indices(before), pixel_indices(after)
    v = valid

    d_ndvi = i1["ndvi"] - i0["ndvi"]
    newmine = refine_from_indices(i0, i1, v)
    change_bools = {
        "drop02": (d_ndvi < -0.2) & v,
        "drop04": (d_ndvi < -0.4) & v,
        "new_water": i0["veg"] & i1["water"] & v,
        "new_bare": i0["veg"] & i1["bare"] & v,
        "lost_veg": i0["veg"] & ~i1["veg"] & v,
        "regrow": (i0["bare"] | i0["water"]) & i1["veg"] & v,
        "newmine": newmine,
    }

    S = _sums(blk, v, i0, i1, change_bools)
    P = _pairs(blk, v, i0, i1, change_bools)
    names, cols = _quantile_columns(blk, v, i0, i1, d_ndvi)
    n = S["n"]
    _derived_columns(names, cols, S, P, change_bools)
    feat = np.stack(cols, axis=-1).astype(np.float32)  # (ny, nx, F)
    valid_frac = n / float(window * window)
    feat[valid_frac < min_valid] = np.nan
    return names, feat, valid_frac


def _sums(
    blk: WindowBlocks,
    v: np.ndarray,
    i0: dict[str, np.ndarray],
    i1: dict[str, np.ndarray],
    change_bools: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Window sums of the pixel counts and index moments (additive over blocks)."""
    sum_names: list[str] = ["n"]
    sum_maps: list[np.ndarray] = [v.astype(np.float32)]
    for tag, ix in (("t0", i0), ("t1", i1)):
        for c in ("veg", "water", "bare", "bright"):
            sum_names.append(f"{c}_{tag}")
            sum_maps.append((ix[c] & v).astype(np.float32))
        for c in ("ndvi", "mndwi"):
            x = ix[c] * v.astype(np.float32)
            sum_names += [f"s_{c}_{tag}", f"ss_{c}_{tag}"]
            sum_maps += [x, x * x]
        wmask = (ix["water"] & v).astype(np.float32)
        bmask = (ix["bare"] & v).astype(np.float32)
        for c in ("ndti", "ln_nir_green"):
            sum_names.append(f"w_{c}_{tag}")
            sum_maps.append(ix[c] * wmask)
        for c in ("ndti", "ln_swir2_swir1"):
            sum_names.append(f"b_{c}_{tag}")
            sum_maps.append(ix[c] * bmask)
    for c, m in change_bools.items():
        sum_names.append(c)
        sum_maps.append(m.astype(np.float32))
    return dict(zip(sum_names, blk.window_sum(blk.block_sum(np.stack(sum_maps))), strict=False))


def _pairs(
    blk: WindowBlocks,
    v: np.ndarray,
    i0: dict[str, np.ndarray],
    i1: dict[str, np.ndarray],
    change_bools: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Pixel-pair and 2 x 2 statistics: texture, blob counts, perimeters."""
    P: dict[str, np.ndarray] = {}
    for tag, ix in (("t0", i0), ("t1", i1)):
        P.update(
            pair_stats(
                blk,
                v,
                {"ndvi": ix["ndvi"], "mndwi": ix["mndwi"]},
                {"water": ix["water"], "bare": ix["bare"]},
                tag,
            )
        )
    P.update(
        pair_stats(
            blk, v, {}, {"newmine": change_bools["newmine"], "new_water": change_bools["new_water"]}, "chg"
        )
    )

    return P


def _quantile_columns(
    blk: WindowBlocks, v: np.ndarray, i0: dict[str, np.ndarray], i1: dict[str, np.ndarray], d_ndvi: np.ndarray
) -> tuple[list[str], list[np.ndarray]]:
    """Quantiles of the indices and their change from fixed-bin window histograms."""
    qmaps = {
        "ndvi_t0": (i0["ndvi"], "ndvi"),
        "ndvi_t1": (i1["ndvi"], "ndvi"),
        "mndwi_t0": (i0["mndwi"], "mndwi"),
        "mndwi_t1": (i1["mndwi"], "mndwi"),
        "bsi_t0": (i0["bsi"], "bsi"),
        "bsi_t1": (i1["bsi"], "bsi"),
        "nbr_t0": (i0["nbr"], "nbr"),
        "nbr_t1": (i1["nbr"], "nbr"),
        "dndvi": (d_ndvi, "dndvi"),
        "dmndwi": (i1["mndwi"] - i0["mndwi"], "dmndwi"),
        "dbsi": (i1["bsi"] - i0["bsi"], "dbsi"),
    }
    names: list[str] = []
    cols: list[np.ndarray] = []
    for key, (x, spec) in qmaps.items():
        lo, hi = HIST_SPECS[spec]
        qs = QUANTILES[spec]
        q = hist_quantiles(blk.window_hist(x, v, lo, hi, HIST_BINS), qs, lo, hi)
        for i, p in enumerate(qs):
            names.append(f"q{p}_{key}")
            cols.append(q[..., i])

    return names, cols


def _derived_columns(
    names: list[str],
    cols: list[np.ndarray],
    S: dict[str, np.ndarray],
    P: dict[str, np.ndarray],
    change_bools: dict[str, np.ndarray],
) -> None:
    """Fractions, spreads, gradients, blob shapes and colours, appended in place."""
    n = S["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        nn = np.maximum(n, 1.0)
        for tag in ("t0", "t1"):
            for c in ("veg", "water", "bare", "bright"):
                names.append(f"frac_{c}_{tag}")
                cols.append(S[f"{c}_{tag}"] / nn)
            for c in ("ndvi", "mndwi"):
                mu = S[f"s_{c}_{tag}"] / nn
                var = np.maximum(S[f"ss_{c}_{tag}"] / nn - mu * mu, 0.0)
                names.append(f"std_{c}_{tag}")
                cols.append(np.sqrt(var))
            npair = np.maximum(P[f"npair_{tag}"], 1.0)
            for c in ("ndvi", "mndwi"):
                names.append(f"grad_{c}_{tag}")
                cols.append(P[f"grad_{c}_{tag}"] / npair)
            for c in ("water", "bare"):
                area = S[f"{c}_{tag}"]
                # Euler number (4-connectivity): components - holes
                euler = area - P[f"edges_{c}_{tag}"] + P[f"quads_{c}_{tag}"]
                names += [f"blobs_{c}_{tag}", f"blobsize_{c}_{tag}", f"perim_{c}_{tag}"]
                cols += [
                    euler / nn * 2304.0,  # per 48 x 48 window of valid pixels
                    area / np.maximum(euler, 1.0),
                    P[f"perim_{c}_{tag}"] / np.maximum(area, 1.0),
                ]
            wn = np.maximum(S[f"water_{tag}"], 1.0)
            bn = np.maximum(S[f"bare_{tag}"], 1.0)
            # colour means; neutral 0 when the class is (nearly) absent
            for c in ("ndti", "ln_nir_green"):
                names.append(f"water_{c}_{tag}")
                cols.append(np.where(S[f"water_{tag}"] >= 5, S[f"w_{c}_{tag}"] / wn, np.nan))
            for c in ("ndti", "ln_swir2_swir1"):
                names.append(f"bare_{c}_{tag}")
                cols.append(np.where(S[f"bare_{tag}"] >= 5, S[f"b_{c}_{tag}"] / bn, np.nan))
        for c in ("veg", "water", "bare", "bright"):
            names.append(f"dfrac_{c}")
            cols.append((S[f"{c}_t1"] - S[f"{c}_t0"]) / nn)
        for c in change_bools:
            names.append(f"frac_{c}")
            cols.append(S[c] / nn)
        for c in ("newmine", "new_water"):
            area = S[c]
            euler = area - P[f"edges_{c}_chg"] + P[f"quads_{c}_chg"]
            names += [f"blobs_{c}", f"perim_{c}"]
            cols += [euler / nn * 2304.0, P[f"perim_{c}_chg"] / np.maximum(area, 1.0)]
        names.append("water_dndti")
        cols.append(cols[names.index("water_ndti_t1")] - cols[names.index("water_ndti_t0")])


def scene_window_features(
    before: np.ndarray,
    after: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    window: int = 48,
    stride: int = 24,
    min_valid: float = 0.3,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Features of every ``window`` x ``window`` px window of a scene, at ``stride`` px.

    Parameters
    ----------
    before, after
        float reflectance (0-1), shape ``(6, y, x)``, band order ``BANDS``.
    valid
        bool ``(y, x)``, pixels valid at both dates; default ``valid_pair(before, after)``.
        Pixels outside it contribute nothing to any statistic.
    window, stride
        Window side and step, px (``window`` must be a multiple of ``stride``). The scene is
        zero-padded (invalid) to a multiple of ``stride``; windows reaching into the padding
        have a lower valid fraction.
    min_valid
        Windows with a smaller fraction of valid pixels get all-NaN features.

    Returns
    -------
    names
        Feature names, length F.
    features
        float32 ``(n_windows, F)``, NaN rows for windows with too few valid pixels.
    origins
        int64 ``(n_windows, 2)``: (row, col) of each window's top-left pixel.
    valid_fraction
        float64 ``(n_windows,)``: fraction of the window's pixels valid at both dates.
    """
    if valid is None:
        valid = valid_pair(before, after)
    names, feat, vfrac = _feature_core(before, after, valid, window, stride, min_valid)
    ny, nx, f = feat.shape
    oy, ox = np.meshgrid(np.arange(ny) * stride, np.arange(nx) * stride, indexing="ij")
    origins = np.stack([oy.ravel(), ox.ravel()], axis=1).astype(np.int64)
    return names, feat.reshape(ny * nx, f), origins, vfrac.reshape(-1)


def window_features(
    before: np.ndarray,
    after: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    min_valid: float = 0.3,
) -> tuple[list[str], np.ndarray]:
    """Features of one square window (e.g. a 48 x 48 px patch).

    Parameters
    ----------
    before, after
        float reflectance (0-1), shape ``(6, y, x)`` with ``y == x``, band order ``BANDS``.
    valid
        bool ``(y, x)``, pixels valid at both dates; default ``valid_pair(before, after)``.
    min_valid
        If fewer than this fraction of pixels are valid, all features are NaN.

    Returns
    -------
    names, features
        Feature names (length F) and float32 ``(F,)``; identical to the
        ``scene_window_features`` row of the same pixels.
    """
    h, w = before.shape[1:]
    if h != w:
        raise ValueError(f"window must be square; got {h} x {w}")
    if valid is None:
        valid = valid_pair(before, after)
    names, feat, _ = _feature_core(before, after, valid, h, h, min_valid)
    return names, feat[0, 0]
