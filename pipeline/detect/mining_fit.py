"""Fitting the gold-mining change detector on labelled two-date sites.

Choices, each for a reason measured on the 575 real sites (leave one country out):

- **No feature of the before state alone.** The data set's mining sites have older, darker
  before-composites than its negatives and were forest before; features of the before state
  learn that artefact ("forest before = mining"), not mining. The before view enters only
  through change features (:data:`FEATURES`).
- **Monotone in the amount of change** (:data:`INCREASING`, :data:`DECREASING`): more new
  bare ground or water never lowers the score, which keeps the model physical where training
  data are thin.
- **Noisy labels down-weighted, never dropped from a test.** Mining-labelled sites that still
  look like intact forest after (``frac_veg_t1 > 0.9`` and almost no new mining pixel) get
  weight :data:`NOISE_WEIGHT` in training; classes are balanced by weight.
- **The threshold comes from training data only**: Youden's J on out-of-fold scores of the
  training sites, folds by group (country) when groups are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from pipeline.core.errors import ModelError
from pipeline.detect.mining_change import MiningDetector, window_scores
from pipeline.detect.window_features import valid_pair, window_features

#: Hyperparameters fixed in advance (never tuned on a held-out fold).
ESTIMATOR_PARAMS: dict[str, float | int] = {
    "learning_rate": 0.05,
    "max_iter": 200,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 10,
    "l2_regularization": 1.0,
    "random_state": 0,
}
#: The model's features: change, and the state after (see the module docstring).
FEATURES: tuple[str, ...] = (
    "frac_newmine", "frac_new_bare", "frac_new_water", "frac_drop02", "frac_drop04",
    "frac_lost_veg", "q5_dndvi", "q10_dndvi", "q25_dndvi", "q95_dbsi", "q90_dbsi",
    "q95_dmndwi", "q90_dmndwi", "blobs_newmine", "perim_newmine", "blobs_new_water",
    "water_ndti_t1", "water_ln_nir_green_t1", "frac_water_t1", "frac_bare_t1",
    "frac_bright_t1", "frac_veg_t1", "blobsize_bare_t1", "blobs_water_t1",
    "perim_water_t1", "bare_ndti_t1", "bare_ln_swir2_swir1_t1", "grad_ndvi_t1",
    "grad_mndwi_t1", "std_ndvi_t1",
)  # fmt: skip
INCREASING = frozenset(
    {
        "frac_newmine", "frac_new_bare", "frac_new_water", "frac_drop02", "frac_drop04",
        "frac_lost_veg", "q95_dbsi", "q90_dbsi", "q95_dmndwi", "q90_dmndwi", "blobs_newmine",
        "blobs_new_water",
    }
)  # fmt: skip
DECREASING = frozenset({"q5_dndvi", "q10_dndvi", "q25_dndvi"})
NOISE_WEIGHT = 0.2


def site_features(
    before: np.ndarray, after: np.ndarray, *, cloud_dilate_px: int = 2, min_valid: float = 0.3
) -> tuple[tuple[str, ...], np.ndarray]:
    """Every window feature (names, float32 vector) of one square site patch (``(6, y, x)``
    reflectance in :data:`~pipeline.detect.window_features.BANDS` order, NaN = nodata); all
    NaN when fewer than ``min_valid`` of its pixels are valid at both dates."""
    valid = valid_pair(before, after, cloud_dilate=cloud_dilate_px)
    names, feats = window_features(before, after, valid=valid, min_valid=min_valid)
    return tuple(names), feats


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity on these (out-of-fold)
    scores. Maximising F1 instead drifts to calling everything mining when positives are
    the majority, as they are here (65 %)."""
    ok = np.isfinite(scores)
    y, s = labels[ok], scores[ok]
    pos, neg = max(int((y == 1).sum()), 1), max(int((y == 0).sum()), 1)
    best, best_j = 0.5, -np.inf
    for t in np.unique(s):
        d = s >= t
        j = (d & (y == 1)).sum() / pos + (~d & (y == 0)).sum() / neg
        if j > best_j:
            best, best_j = float(t), float(j)
    return best


def training_weights(features: np.ndarray, labels: np.ndarray, *, names: Sequence[str]) -> np.ndarray:
    """Per-site weights: noisy positives (forest after, no new mining) down-weighted, then
    both classes given equal total weight."""
    veg = features[:, list(names).index("frac_veg_t1")]
    new = features[:, list(names).index("frac_newmine")]
    w = np.where((labels == 1) & (veg > 0.9) & (new < 0.01), NOISE_WEIGHT, 1.0)
    for c in (0, 1):
        total = w[labels == c].sum()
        if total > 0:
            w[labels == c] *= len(labels) / 2 / total
    return w


def _fit(features: np.ndarray, labels: np.ndarray, *, names: Sequence[str]) -> HistGradientBoostingClassifier:
    ok = ~np.isnan(features).all(axis=1)
    if len(np.unique(labels[ok])) < 2:
        raise ModelError(
            "Training needs mining and non-mining sites with valid pixels; one class is missing."
        )
    cols = [list(names).index(f) for f in FEATURES]
    mono = [1 if f in INCREASING else -1 if f in DECREASING else 0 for f in FEATURES]
    weights = training_weights(features[ok], labels[ok], names=names)
    model = HistGradientBoostingClassifier(monotonic_cst=mono, **ESTIMATOR_PARAMS)
    # one thread: on a few hundred sites OpenMP is several times slower than none
    with threadpool_limits(1):
        return model.fit(features[ok][:, cols], labels[ok], sample_weight=weights)


def _detector(model: HistGradientBoostingClassifier, threshold: float) -> MiningDetector:
    return MiningDetector(estimator=model, features=FEATURES, threshold=threshold)


def _out_of_fold(
    features: np.ndarray, labels: np.ndarray, *, names: Sequence[str], groups: np.ndarray | None, seed: int
) -> np.ndarray:
    cols = [list(names).index(f) for f in FEATURES]
    scores = np.full(len(labels), np.nan, dtype=np.float32)
    if groups is not None and len(set(groups)) >= 3:
        splits = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in sorted(set(groups))]
    else:
        splits = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=seed).split(features, labels))
    for train, test in splits:
        if len(np.unique(labels[train])) < 2:
            continue
        model = _fit(features[train], labels[train], names=names)
        scores[test] = window_scores(features[test][:, cols], detector=_detector(model, 0.5))
    return scores


@dataclass(frozen=True, kw_only=True)
class FitReport:
    """What fitting saw: the threshold and the training counts."""

    threshold: float
    n_sites: int
    n_scored: int
    positives: int
    threshold_folds: str


def fit_mining_detector(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    names: Sequence[str],
    groups: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[MiningDetector, FitReport]:
    """Fit the window classifier on site features (``names`` = their columns, as
    :func:`site_features` gives them) and choose its threshold from out-of-fold scores of
    the same training sites, folds by ``groups`` when given."""
    labels = np.asarray(labels, dtype=int)
    group = None if groups is None else np.asarray(groups, dtype=object)
    oof = _out_of_fold(features, labels, names=names, groups=group, seed=seed)
    threshold = youden_threshold(labels, oof)
    detector = _detector(_fit(features, labels, names=names), threshold)
    report = FitReport(
        threshold=threshold,
        n_sites=len(labels),
        n_scored=int((~np.isnan(features).all(axis=1)).sum()),
        positives=int(labels.sum()),
        threshold_folds="leave one group out" if group is not None and len(set(group)) >= 3 else "5-fold",
    )
    return detector, report
