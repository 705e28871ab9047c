"""Accuracy report: numbers recomputed independently, Olofsson et al. (2014) worked example."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

from pipeline.core.errors import ConfigError
from pipeline.detect.evaluate import accuracy_report, area_adjusted, report_markdown

CLASSES = ["forest", "bare_mining", "water"]


def _labels(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.choice(CLASSES, size=400, p=[0.6, 0.25, 0.15])
    y_pred = np.where(rng.random(400) < 0.8, y_true, rng.choice(CLASSES, size=400))
    return y_true, y_pred


def test_strata_outside_classes_are_refused() -> None:
    with pytest.raises(ConfigError, match="not classes"):
        area_adjusted(np.eye(2, dtype=int), classes=["a", "b"], mapped_area_ha={"c": 1.0})


def test_report_matches_sklearn_and_hand_specificity() -> None:
    y_true, y_pred = _labels()
    rep = accuracy_report(y_true, y_pred, classes=CLASSES, positive="bare_mining")
    m = np.array(rep["confusion_matrix"])
    np.testing.assert_array_equal(m, confusion_matrix(y_true, y_pred, labels=CLASSES))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    for i, c in enumerate(CLASSES):
        assert rep["per_class"][c]["precision"] == pytest.approx(p[i])
        assert rep["per_class"][c]["recall"] == pytest.approx(r[i])
        assert rep["per_class"][c]["f1"] == pytest.approx(f[i])
        assert rep["per_class"][c]["support"] == s[i]
    # specificity of the mining class straight from the matrix: TN / (TN + FP)
    k = CLASSES.index("bare_mining")
    tn = np.delete(np.delete(m, k, 0), k, 1).sum()
    fp = np.delete(m[:, k], k).sum()
    assert rep["positive_specificity"] == pytest.approx(tn / (tn + fp))
    assert rep["overall_accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert rep["kappa"] == pytest.approx(cohen_kappa_score(y_true, y_pred))
    md = report_markdown(rep)
    assert f"| bare_mining | {m[1, 0]} | {m[1, 1]} | {m[1, 2]} |" in md


def test_olofsson_2014_worked_example() -> None:
    # Olofsson et al. (2014) RSE 148: 42-57, section 5 example: strata = map classes
    # (deforestation, forest gain, stable forest, stable non-forest), 30 m pixels.
    classes = ["deforestation", "gain", "forest", "non_forest"]
    map_by_ref = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
    pixels = [200_000, 150_000, 3_200_000, 6_450_000]
    areas = {c: n * 0.09 for c, n in zip(classes, pixels, strict=True)}
    out = area_adjusted(map_by_ref.T, classes=classes, mapped_area_ha=areas)
    defo = out["classes"]["deforestation"]
    # published: area of deforestation 21,158 ha +- 6,158 ha (95 % CI), user's 0.88, producer's 0.75
    assert defo["area_ha"] == pytest.approx(21_158, abs=1)
    assert defo["area_ci95_ha"] == pytest.approx(6_158, abs=1)
    assert defo["users_accuracy"] == pytest.approx(0.88)
    assert defo["producers_accuracy"] == pytest.approx(0.75, abs=0.005)
    assert out["overall_accuracy"] == pytest.approx(0.95, abs=0.005)
    # adjusted areas still add up to the map's total
    assert sum(v["area_ha"] for v in out["classes"].values()) == pytest.approx(sum(areas.values()))
