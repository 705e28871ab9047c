"""The gold-mining detector on labelled (or unlabelled) two-date sites: per-site scores and
decisions made by the very functions a run uses (:func:`mining_change`, then
:func:`mining_rows` with the minimum mapping unit), training on a sites folder, and
leave-one-country-out validation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from pyproj import CRS

from pipeline.core.errors import DataNotFoundError
from pipeline.detect.detections import mining_rows
from pipeline.detect.mining_change import MiningDetector, mining_change
from pipeline.detect.mining_fit import FitReport, fit_mining_detector, site_features
from pipeline.detect.window_features import BANDS
from pipeline.ingest.site_patches import PatchArray, SitePatch, read_patch, read_site_index

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("sample_id", "mining_score", "detected", "detected_ha")


@dataclass(frozen=True)
class SiteData:
    """A sites folder read into memory once: the sites and their before / after arrays."""

    sites: list[SitePatch]
    before: list[PatchArray]
    after: list[PatchArray]

    @classmethod
    def read(cls, folder: Path) -> SiteData:
        sites = read_site_index(folder)
        if not sites:
            raise DataNotFoundError(f"{folder}/patches.csv lists no site.")
        return cls(sites, [read_patch(s.before) for s in sites], [read_patch(s.after) for s in sites])

    def features(self, *, detector: MiningDetector | None = None) -> tuple[tuple[str, ...], np.ndarray]:
        """Window features of every site (one 48 x 48 window each)."""
        rows: list[np.ndarray] = []
        names: tuple[str, ...] = ()
        dilate = detector.cloud_dilate_px if detector else 2
        min_valid = detector.min_valid_fraction if detector else 0.3
        for b, a in zip(self.before, self.after, strict=True):
            names, f = site_features(b.data, a.data, cloud_dilate_px=dilate, min_valid=min_valid)
            rows.append(f)
        return names, np.vstack(rows)

    def labels(self) -> np.ndarray:
        missing = [s.sample_id for s in self.sites if s.mining is None]
        if missing:
            raise DataNotFoundError(
                f"{len(missing)} sites have no 'mining' label (e.g. {missing[:3]}); training and "
                "validation need labels in patches.csv."
            )
        return np.array([s.mining for s in self.sites], dtype=int)


def _view(patch: PatchArray) -> xr.Dataset:
    h, w = patch.data.shape[1:]
    t = patch.transform
    coords = {"y": t.f + (np.arange(h) + 0.5) * t.e, "x": t.c + (np.arange(w) + 0.5) * t.a}
    ds = xr.Dataset({name: (("y", "x"), patch.data[i]) for i, name in enumerate(BANDS)}, coords=coords)
    return ds.rio.write_crs(patch.crs).rio.write_transform(t)


def predict_site(
    before: PatchArray, after: PatchArray, *, detector: MiningDetector, min_area_ha: float
) -> tuple[float, int, float]:
    """(mining score, detected 0/1, detected hectares) of one site: what a run on this
    site's two views would report."""
    change = mining_change(_view(before), _view(after), detector=detector)
    score = float(np.nanmax(change["score"].values)) if np.isfinite(change["score"].values).any() else np.nan
    rows = mining_rows(
        {"mining": change["mining"].values, "score": change["score"].values},
        aoi_id="site",
        transform=before.transform,
        crs=before.crs,
        area_crs=CRS.from_user_input(before.crs),
        min_area_ha=min_area_ha,
        first_seen=None,
        last_seen=None,
        period_label="",
        confidence="probable",
    )
    hectares = float(rows["area_ha"].sum()) if len(rows) else 0.0
    return score, int(hectares > 0), round(hectares, 4)


def predict_sites(data: SiteData, *, detector: MiningDetector, min_area_ha: float) -> pd.DataFrame:
    """:data:`PREDICTION_COLUMNS` for every site of ``data``."""
    rows = []
    for site, b, a in zip(data.sites, data.before, data.after, strict=True):
        score, detected, ha = predict_site(b, a, detector=detector, min_area_ha=min_area_ha)
        rows.append((site.sample_id, score, detected, ha))
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))


def train(data: SiteData, *, seed: int = 0) -> tuple[MiningDetector, FitReport]:
    """Fit the detector on every labelled site of ``data``."""
    names, feats = data.features()
    groups = [s.country or "unknown" for s in data.sites]
    return fit_mining_detector(feats, data.labels(), names=names, groups=groups, seed=seed)


def leave_one_out(data: SiteData, *, by: Sequence[str], min_area_ha: float, seed: int = 0) -> pd.DataFrame:
    """Per-site held-out predictions: for each value of ``by`` (a country), a detector
    trained on the sites of every other value predicts that value's sites. Columns:
    :data:`PREDICTION_COLUMNS` plus ``group``, ``mining``, ``category``, ``window_detected``
    (window score at or above the fold's threshold, before the pixel refinement)."""
    names, feats = data.features()
    labels = data.labels()
    group = np.asarray(by, dtype=object)
    frames = []
    for g in sorted(set(group)):
        test = np.flatnonzero(group == g)
        train_idx = np.flatnonzero(group != g)
        inner = [data.sites[i].country or "unknown" for i in train_idx]
        detector, _ = fit_mining_detector(
            feats[train_idx], labels[train_idx], names=names, groups=inner, seed=seed
        )
        part = SiteData(
            [data.sites[i] for i in test], [data.before[i] for i in test], [data.after[i] for i in test]
        )
        pred = predict_sites(part, detector=detector, min_area_ha=min_area_ha)
        pred["group"] = g
        pred["mining"] = labels[test]
        pred["category"] = [data.sites[i].category for i in test]
        pred["window_detected"] = (
            np.nan_to_num(pred["mining_score"], nan=-1.0) >= detector.threshold
        ).astype(int)
        frames.append(pred)
        log.info("held out %s: %d sites, threshold %.3f", g, len(test), detector.threshold)
    return pd.concat(frames, ignore_index=True)
