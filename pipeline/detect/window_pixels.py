"""Pixels of the gold-mining change detector: validity (nodata, white cloud), spectral
indices and land states, and the refined new-mining pixels (pure numpy).

Arrays are float32 reflectance ``(band, y, x)`` in :data:`BANDS` order, 0-1.
"""

from __future__ import annotations

import numpy as np

BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")

# --- thresholds (reflectance or index units) -------------------------------------------
CLOUD_BLUE = 0.15  #: blue reflectance above which a *white* pixel is cloud
CLOUD_WHITENESS = 0.8  #: blue / red above which a bright pixel is white (cloud), not soil
VEG_NDVI = 0.6  #: NDVI above which a pixel is vegetation
BARE_NDVI = 0.3  #: NDVI below which a non-water pixel is bare / disturbed ground
WATER_MNDWI = 0.0  #: MNDWI above which a low-NDVI pixel is open water
WATER_NDVI = 0.25  #: NDVI below which a high-MNDWI pixel counts as water
BRIGHT_SWIR1 = 0.3  #: swir1 reflectance above which bare ground is bright (sand, tailings)
# refine_pixels (new-mining pixels)
NEW_MINE_NDVI0 = 0.6
NEW_MINE_NDVI1 = 0.35
NEW_MINE_DROP = 0.3

# --- fixed histogram ranges for quantiles ----------------------------------------------
HIST_BINS = 80
HIST_SPECS: dict[str, tuple[float, float]] = {
    "ndvi": (-0.4, 1.0),
    "mndwi": (-0.8, 0.8),
    "bsi": (-0.6, 0.6),
    "nbr": (-0.6, 1.0),
    "dndvi": (-1.2, 0.6),
    "dmndwi": (-0.6, 1.2),
    "dbsi": (-0.4, 0.8),
}
QUANTILES: dict[str, tuple[int, ...]] = {
    "ndvi": (10, 25, 50, 75, 90),
    "mndwi": (50, 75, 90),
    "bsi": (50, 75, 90),
    "nbr": (10, 50),
    "dndvi": (5, 10, 25, 50),
    "dmndwi": (75, 90, 95),
    "dbsi": (75, 90, 95),
}


# =========================================================================== pixels ===
def nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    den = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - b) / den
    out[~np.isfinite(out)] = 0.0
    return out.astype(np.float32, copy=False)


def log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.maximum(a, 1e-4) / np.maximum(b, 1e-4))
    return out.astype(np.float32, copy=False)


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square (2r+1) binary dilation by separable shifted ORs (edges not wrapped)."""
    if r <= 0 or not mask.any():
        return mask
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for s in range(1, r + 1):
            if s >= n:
                break
            sl_a = [slice(None)] * 2
            sl_b = [slice(None)] * 2
            sl_a[axis], sl_b[axis] = slice(s, None), slice(None, -s)
            out[tuple(sl_a)] |= src[tuple(sl_b)]
            out[tuple(sl_b)] |= src[tuple(sl_a)]
    return out


def pixel_valid(
    img: np.ndarray,
    *,
    cloud_blue: float = CLOUD_BLUE,
    cloud_whiteness: float = CLOUD_WHITENESS,
    cloud_dilate: int = 2,
) -> np.ndarray:
    """Valid-pixel mask of one date.

    Parameters
    ----------
    img
        float reflectance (0-1), shape ``(6, y, x)``, band order ``BANDS``.
    cloud_blue, cloud_whiteness
        A pixel is cloud if ``blue > cloud_blue`` and ``blue / red > cloud_whiteness``.
    cloud_dilate
        Cloud mask dilation radius, px (square structuring element).

    Returns
    -------
    np.ndarray
        bool ``(y, x)``: True where no band is nodata (0 / non-finite) and not cloud.
    """
    nodata = ~np.all(np.isfinite(img) & (img > 0), axis=0)
    blue, red = img[0], img[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        cloud = (blue > cloud_blue) & (blue > cloud_whiteness * red)
    cloud = dilate(cloud, cloud_dilate)
    return ~(nodata | cloud)


def valid_pair(before: np.ndarray, after: np.ndarray, *, cloud_dilate: int = 2) -> np.ndarray:
    """Pixels valid at both dates, bool ``(y, x)``; see ``pixel_valid``."""
    return pixel_valid(before, cloud_dilate=cloud_dilate) & pixel_valid(after, cloud_dilate=cloud_dilate)


def pixel_indices(img: np.ndarray) -> dict[str, np.ndarray]:
    b, g, r, n, s1, s2 = (img[i].astype(np.float32, copy=False) for i in range(6))
    ndvi = nd(n, r)
    mndwi = nd(g, s1)
    out = {
        "ndvi": ndvi,
        "mndwi": mndwi,
        "bsi": nd(s1 + r, n + b),
        "nbr": nd(n, s2),
        "ndti": nd(r, g),  # water colour: brown/turbid > 0, clear/black < 0
        "ln_nir_green": log_ratio(n, g),  # suspended sediment raises nir on water
        "ln_swir2_swir1": log_ratio(s2, s1),
    }
    water = (mndwi > WATER_MNDWI) & (ndvi < WATER_NDVI)
    out["veg"] = ndvi > VEG_NDVI
    out["water"] = water
    out["bare"] = (ndvi < BARE_NDVI) & ~water
    out["bright"] = out["bare"] & (s1 > BRIGHT_SWIR1)
    return out


def refine_pixels(
    before: np.ndarray,
    after: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    ndvi_before_min: float = NEW_MINE_NDVI0,
    ndvi_after_max: float = NEW_MINE_NDVI1,
    ndvi_drop_min: float = NEW_MINE_DROP,
) -> np.ndarray:
    """New-mining pixels: vegetated before, bare ground or water after, with an NDVI drop.

    Parameters
    ----------
    before, after
        float reflectance (0-1), shape ``(6, y, x)``, band order ``BANDS``.
    valid
        bool ``(y, x)`` pixels valid at both dates; default ``valid_pair(before, after)``.
    ndvi_before_min, ndvi_after_max, ndvi_drop_min
        NDVI thresholds (unitless): ``ndvi0 > ndvi_before_min``, ``ndvi1 < ndvi_after_max``,
        ``ndvi0 - ndvi1 > ndvi_drop_min``; and the pixel is bare or water after.

    Returns
    -------
    np.ndarray
        bool ``(y, x)`` mask; each True pixel is 100 m^2 (0.01 ha) at 10 m.
    """
    if valid is None:
        valid = valid_pair(before, after)
    return refine_from_indices(
        pixel_indices(before), pixel_indices(after), valid, ndvi_before_min, ndvi_after_max, ndvi_drop_min
    )


def refine_from_indices(
    i0: dict[str, np.ndarray],
    i1: dict[str, np.ndarray],
    valid: np.ndarray,
    ndvi_before_min: float = NEW_MINE_NDVI0,
    ndvi_after_max: float = NEW_MINE_NDVI1,
    ndvi_drop_min: float = NEW_MINE_DROP,
) -> np.ndarray:
    return (
        valid
        & (i0["ndvi"] > ndvi_before_min)
        & (i1["ndvi"] < ndvi_after_max)
        & ((i0["ndvi"] - i1["ndvi"]) > ndvi_drop_min)
        & (i1["bare"] | i1["water"])
    )


#: NDVI drop (unitless) that marks a pixel of mining growth inside a mining window.
GROWTH_NDVI_DROP = 0.2


def mining_footprint(before: np.ndarray, after: np.ndarray, *, valid: np.ndarray) -> np.ndarray:
    """Pixels where mining appeared or grew, for use *inside windows the model calls
    mining*: bare ground or water after, with an NDVI drop of at least
    :data:`GROWTH_NDVI_DROP`. Unlike :func:`refine_pixels` it does not ask for forest before,
    so pits spreading into scrub or old clearings count; ground that was already bare and
    stayed so does not.

    Returns
    -------
    np.ndarray
        bool ``(y, x)``.
    """
    i0, i1 = pixel_indices(before), pixel_indices(after)
    return valid & ((i0["ndvi"] - i1["ndvi"]) > GROWTH_NDVI_DROP) & (i1["bare"] | i1["water"])
