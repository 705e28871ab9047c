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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.core.errors import ConfigError, ModelError, RasterError

RED_A, RED_C = 228.1, 0.1641
NIR_A, NIR_C = 3078.9, 0.2112
BLEND_LOW, BLEND_HIGH = 0.05, 0.07


def _single(rho: np.ndarray, a: float, c: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = a * rho / (1.0 - rho / c)
    # Beyond the saturation reflectance C the formula turns negative: no valid retrieval.
    return np.where((rho >= 0) & (rho < c), t, np.nan).astype(np.float32)


def dogliotti_kernel(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
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
    out = xr.apply_ufunc(dogliotti_kernel, red, nir, dask="parallelized", output_dtypes=[np.float32])
    out.attrs["units"] = "FNU"
    return out.rename(name)


def nechad_fnu(
    band: xr.DataArray, *, a: float = RED_A, c: float = RED_C, name: str = "turbidity_fnu"
) -> xr.DataArray:
    """Nechad et al. (2009) single-band turbidity ``A * rho / (1 - rho / C)`` (FNU)."""
    out = xr.apply_ufunc(_single, band, a, c, dask="parallelized", output_dtypes=[np.float32])
    out.attrs["units"] = "FNU"
    return out.rename(name)


# --- Empirical calibration against in-situ turbidity --------------------------------------
#
# A log-linear model ``ln T = a + sum_k b_k * p_k`` on a few predictors computed from the
# canonical bands. Predictors: ``ndti`` (red-green normalised difference: the red/green
# ratio rises with suspended sediment and cancels much of the illumination / adjacency
# error common to both bands), ``log_red`` and ``log_dogliotti``. Which set is used is chosen
# by leave-one-out cross-validation on the fitting rows only, never on the test rows.

PREDICTORS: dict[str, tuple[str, ...]] = {
    "ndti": ("red", "green"),
    "log_red": ("red",),
    "log_dogliotti": ("red", "nir"),
}
# log_dogliotti is not a default candidate: Dogliotti saturates (no retrieval) once NIR
# reflectance nears C = 0.21, which is exactly the most turbid water we must not lose.
CANDIDATE_SETS: tuple[tuple[str, ...], ...] = (
    ("log_red",),
    ("ndti",),
    ("ndti", "log_red"),
)


def _predictor(name: str, b: Mapping[str, np.ndarray]) -> np.ndarray:
    red = np.asarray(b["red"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "ndti":
            green = np.asarray(b["green"], dtype=np.float64)
            return (red - green) / (red + green)
        if name == "log_red":
            return np.log(np.where(red > 0, red, np.nan))
        if name == "log_dogliotti":
            t = dogliotti_kernel(red.astype(np.float32), np.asarray(b["nir"], dtype=np.float32)).astype(
                np.float64
            )
            return np.log(np.where(t > 0, t, np.nan))
    raise ConfigError(f"Unknown turbidity predictor '{name}'; use one of {sorted(PREDICTORS)}.")


@dataclass(frozen=True, kw_only=True)
class TurbidityCalibration:
    """``T = exp(intercept + sum(coef_k * predictor_k))`` in the in-situ units (NTU ~ FNU)."""

    predictors: tuple[str, ...]
    intercept: float
    coefficients: tuple[float, ...]
    units: str = "FNU"
    fitted_on: dict[str, Any] = field(default_factory=dict)
    """Provenance: source file fingerprint, rows, period."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Held-out skill (Spearman, RMSE) and the single-band baseline on the same rows."""

    def bands(self) -> tuple[str, ...]:
        """Canonical bands the calibration reads."""
        return tuple(dict.fromkeys(b for p in self.predictors for b in PREDICTORS[p]))

    def predict(self, bands: Mapping[str, np.ndarray]) -> np.ndarray:
        """Turbidity for numpy reflectance arrays (float32, NaN where undefined)."""
        acc = np.full(np.shape(bands["red"]), self.intercept, dtype=np.float64)
        for name, coef in zip(self.predictors, self.coefficients, strict=True):
            acc = acc + coef * _predictor(name, bands)
        with np.errstate(over="ignore"):
            return np.exp(acc).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": "log-linear",
            "predictors": list(self.predictors),
            "intercept": self.intercept,
            "coefficients": list(self.coefficients),
            "units": self.units,
            "fitted_on": self.fitted_on,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TurbidityCalibration:
        """Inverse of :meth:`to_dict`; validates predictor names and lengths."""
        preds = tuple(str(p) for p in doc["predictors"])
        coefs = tuple(float(c) for c in doc["coefficients"])
        if len(preds) != len(coefs) or not set(preds) <= set(PREDICTORS):
            raise ValueError(f"predictors {preds} / coefficients {coefs} do not match {sorted(PREDICTORS)}")
        return cls(
            predictors=preds,
            intercept=float(doc["intercept"]),
            coefficients=coefs,
            units=str(doc.get("units", "FNU")),
            fitted_on=dict(doc.get("fitted_on", {})),
            metrics=dict(doc.get("metrics", {})),
        )


def _fit_loglinear(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    design = np.column_stack([np.ones(len(x)), x])
    beta, *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
    return float(beta[0]), beta[1:]


def _loo_rmse_log(x: np.ndarray, y: np.ndarray) -> float:
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        a, b = _fit_loglinear(x[keep], y[keep])
        errs.append(a + x[i] @ b - np.log(y[i]))
    return float(np.sqrt(np.mean(np.square(errs))))


def fit_turbidity_calibration(
    matchups: pd.DataFrame,
    *,
    target: str = "turbidity",
    train: np.ndarray,
    candidates: Sequence[tuple[str, ...]] = CANDIDATE_SETS,
    baseline_band: str = "red",
) -> TurbidityCalibration:
    """Fit the log-linear calibration on ``matchups[train]`` and score it on the rest.

    Parameters
    ----------
    matchups
        One row per same-day matchup: canonical band columns (reflectance 0-1) and
        ``target`` (in-situ turbidity, NTU or FNU, > 0).
    train
        Boolean row mask of the fitting rows (e.g. years 2017-2018); the others are the
        held-out test rows.
    candidates
        Predictor sets to choose from by leave-one-out RMSE of ln T on the fitting rows.

    Returns
    -------
    TurbidityCalibration
        With ``metrics``: chosen set, LOO RMSE of every candidate, and on the test rows
        Spearman, RMSE (target units) and the Spearman of ``baseline_band`` alone.
    """
    from scipy.stats import spearmanr

    train = np.asarray(train, dtype=bool)
    y_all = matchups[target].to_numpy(np.float64)
    bands = {c: matchups[c].to_numpy(np.float64) for c in ("blue", "green", "red", "nir") if c in matchups}
    scores: dict[str, float] = {}
    best: tuple[float, tuple[str, ...]] | None = None
    for cand in candidates:
        x = np.column_stack([_predictor(p, bands) for p in cand])
        ok = train & np.isfinite(x).all(axis=1) & (y_all > 0)
        if ok.sum() < len(cand) + 3:
            continue
        score = _loo_rmse_log(x[ok], y_all[ok])
        scores["+".join(cand)] = round(score, 4)
        if best is None or score < best[0]:
            best = (score, cand)
    if best is None:
        raise ModelError("Too few valid matchups to fit a turbidity calibration; give more fitting rows.")
    chosen = best[1]
    x = np.column_stack([_predictor(p, bands) for p in chosen])
    ok = np.isfinite(x).all(axis=1) & (y_all > 0)
    a, b = _fit_loglinear(x[ok & train], y_all[ok & train])
    cal = TurbidityCalibration(predictors=chosen, intercept=a, coefficients=tuple(float(v) for v in b))
    test = ok & ~train
    metrics: dict[str, Any] = {
        "chosen": list(chosen),
        "loo_rmse_ln": scores,
        "n_train": int((ok & train).sum()),
    }
    metrics["n_test"] = int(test.sum())
    if test.sum() >= 3:
        pred = cal.predict({k: v[test] for k, v in bands.items()}).astype(np.float64)
        metrics["test_spearman"] = round(float(spearmanr(pred, y_all[test]).statistic), 4)
        metrics["test_rmse"] = round(float(np.sqrt(np.mean((pred - y_all[test]) ** 2))), 2)
        metrics[f"test_spearman_{baseline_band}_only"] = round(
            float(spearmanr(bands[baseline_band][test], y_all[test]).statistic), 4
        )
    return TurbidityCalibration(
        predictors=chosen, intercept=a, coefficients=cal.coefficients, metrics=metrics
    )


def calibrated_block(*arrays: np.ndarray, calibration: TurbidityCalibration) -> np.ndarray:
    return calibration.predict(dict(zip(calibration.bands(), arrays, strict=True)))


def calibrated_fnu(
    bands: Mapping[str, xr.DataArray], *, calibration: TurbidityCalibration, name: str = "turbidity_fnu"
) -> xr.DataArray:
    """Turbidity from an in-situ calibration, lazily for dask inputs.

    ``bands`` maps canonical names (``red``, ``green``, ``nir``) to reflectance (0-1) on one
    grid; mask to water first. Returns float32 with the bands' dims.
    """
    missing = [b for b in calibration.bands() if b not in bands]
    if missing:
        raise RasterError(f"The calibration needs bands {list(calibration.bands())}; missing {missing}.")
    out = xr.apply_ufunc(
        calibrated_block,
        *[bands[b] for b in calibration.bands()],
        kwargs={"calibration": calibration},
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    out.attrs["units"] = calibration.units
    return out.rename(name)
