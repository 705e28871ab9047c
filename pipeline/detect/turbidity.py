"""Water turbidity in FNU from red / NIR reflectance.

Dogliotti et al. (2015), "A single algorithm to retrieve turbidity from remotely-sensed
data in all coastal and estuarine waters", Remote Sens. Environ. 156: 157-168.
``T = A * rho_w / (1 - rho_w / C)`` with red (665 nm) A=228.1, C=0.1641 and NIR (865 nm)
A=3078.9, C=0.2112; red is used below rho_red = 0.05, NIR above 0.07, linearly blended in
between.

The algorithm wants water-leaving reflectance ``rho_w = pi * Rrs``. Sentinel-2 L2A gives
bottom-of-atmosphere reflectance, which over water is rho_w plus skylight and sun glint
reflected at the surface (a few 1e-3 in red, more with glint) and carries Sen2Cor's land-tuned
aerosol correction. We use BOA reflectance as rho_w: turbidity of clear water is biased high
(a 0.003 excess in red is ~0.7 FNU), and glint-affected scenes overestimate. Fine for
"turbid vs clear" and for up/downstream ratios at one date; absolute FNU should be
calibrated against in-situ data (``asm-monitor calibrate-turbidity``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

RED_A, RED_C = 228.1, 0.1641
NIR_A, NIR_C = 3078.9, 0.2112
BLEND_LOW, BLEND_HIGH = 0.05, 0.07


def _single(rho: np.ndarray, a: float, c: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = a * rho / (1.0 - rho / c)
    # Beyond the saturation reflectance C the formula turns negative: no valid retrieval.
    return np.where((rho >= 0) & (rho < c), t, np.nan).astype(np.float32)


def _dogliotti(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    red = red.astype(np.float32, copy=False)
    nir = nir.astype(np.float32, copy=False)
    t_red = _single(red, RED_A, RED_C)
    t_nir = _single(nir, NIR_A, NIR_C)
    w = np.clip((red - BLEND_LOW) / (BLEND_HIGH - BLEND_LOW), 0.0, 1.0)
    blended = (1.0 - w) * t_red + w * t_nir
    out = np.where(red < BLEND_LOW, t_red, np.where(red > BLEND_HIGH, t_nir, blended))
    return out.astype(np.float32)


def dogliotti_fnu(red: xr.DataArray, nir: xr.DataArray, *, name: str = "turbidity_fnu") -> xr.DataArray:
    """Turbidity (FNU) from red (S2 B04) and NIR (S2 B8A or B08) reflectance, 0-1.

    Apply to water pixels only (mask first); returns float32 with the inputs' dims, NaN
    where the retrieval saturates.
    """
    out = xr.apply_ufunc(_dogliotti, red, nir, dask="parallelized", output_dtypes=[np.float32])
    out.attrs["units"] = "FNU"
    return out.rename(name)


def nechad_fnu(
    band: xr.DataArray, *, a: float = RED_A, c: float = RED_C, name: str = "turbidity_fnu"
) -> xr.DataArray:
    """Nechad et al. (2009) single-band turbidity ``A * rho / (1 - rho / C)`` (FNU)."""
    out = xr.apply_ufunc(_single, band, a, c, dask="parallelized", output_dtypes=[np.float32])
    out.attrs["units"] = "FNU"
    return out.rename(name)
