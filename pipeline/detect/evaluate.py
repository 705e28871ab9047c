"""Accuracy assessment of a classified map against reference labels.

Confusion matrices follow scikit-learn: rows = reference (true) class, columns = map
(predicted) class. Area-adjusted estimates follow Olofsson et al. (2014), "Good practices for
estimating area and assessing accuracy of land change", Remote Sens. Environ. 148: 42-57,
eqs. 2-10, with the map classes as strata (rows of their error matrix = map class, which
is our matrix transposed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.core.errors import ConfigError

Z95 = 1.96


def confusion(
    y_true: Sequence[str] | np.ndarray, y_pred: Sequence[str] | np.ndarray, *, classes: Sequence[str]
) -> np.ndarray:
    """Counts ``m[i, j]`` of pixels of reference class ``classes[i]`` mapped as ``classes[j]``.

    Pairs whose reference or prediction is not in ``classes`` (e.g. ``nodata``) are dropped.
    """
    index = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return m


def _safe(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def per_class_metrics(matrix: np.ndarray, *, classes: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Precision (user's accuracy), recall (producer's accuracy), F1, specificity, support."""
    total = matrix.sum()
    out: dict[str, dict[str, float | None]] = {}
    for i, c in enumerate(classes):
        tp = float(matrix[i, i])
        fp = float(matrix[:, i].sum() - tp)
        fn = float(matrix[i, :].sum() - tp)
        tn = float(total - tp - fp - fn)
        precision = _safe(tp, tp + fp)
        recall = _safe(tp, tp + fn)
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall > 0
            else None
        )
        out[c] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "specificity": _safe(tn, tn + fp),
            "support": float(tp + fn),
        }
    return out


def area_adjusted(
    matrix: np.ndarray, *, classes: Sequence[str], mapped_area_ha: Mapping[str, float]
) -> dict[str, Any]:
    """Olofsson et al. (2014) stratified estimators, strata = map classes.

    Parameters
    ----------
    matrix
        Reference x map counts (our convention).
    mapped_area_ha
        Area of each map class in the whole map (ha), the stratum sizes.

    Returns
    -------
    dict
        ``overall_accuracy`` and its 95 % CI half-width, per class ``users_accuracy``,
        ``producers_accuracy``, ``area_ha`` (error-adjusted) with its 95 % CI half-width,
        and ``mapped_area_ha``.
    """
    unknown = sorted(set(mapped_area_ha) - set(classes))
    if unknown:
        raise ConfigError(f"Strata {unknown} are not classes of the matrix {list(classes)}.")
    n = matrix.T.astype(np.float64)  # rows = map class (stratum), columns = reference
    area = np.array([float(mapped_area_ha.get(c, 0.0)) for c in classes])
    total = area.sum()
    if total <= 0:
        raise ConfigError("Mapped areas sum to zero; give the area of each map class in ha.")
    w = area / total
    n_i = n.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n_i[:, None] > 0, n / n_i[:, None], 0.0)
    p = w[:, None] * frac  # estimated area proportions p_ij (eq. 4)
    overall = float(np.trace(p))
    users = np.where(n_i > 0, np.diag(frac), np.nan)
    var_o = float(
        sum(w[i] ** 2 * users[i] * (1 - users[i]) / (n_i[i] - 1) for i in range(len(classes)) if n_i[i] > 1)
    )
    per: dict[str, dict[str, float | None]] = {}
    for k, c in enumerate(classes):
        p_k = p[:, k].sum()
        se = np.sqrt(
            sum(
                w[i] ** 2 * frac[i, k] * (1 - frac[i, k]) / (n_i[i] - 1)
                for i in range(len(classes))
                if n_i[i] > 1
            )
        )
        per[c] = {
            "mapped_area_ha": float(area[k]),
            "users_accuracy": None if np.isnan(users[k]) else float(users[k]),
            "producers_accuracy": _safe(p[k, k], p_k),
            "area_ha": float(p_k * total),
            "area_ci95_ha": float(Z95 * se * total),
        }
    return {"overall_accuracy": overall, "overall_ci95": float(Z95 * np.sqrt(var_o)), "classes": per}


def accuracy_report(
    y_true: Sequence[str] | np.ndarray,
    y_pred: Sequence[str] | np.ndarray,
    *,
    classes: Sequence[str],
    positive: str = "bare_mining",
    mapped_area_ha: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Confusion matrix, overall accuracy, Cohen's kappa, per-class metrics, specificity of
    the ``positive`` (mining) class and, when ``mapped_area_ha`` is given, Olofsson
    area-adjusted accuracy and areas."""
    m = confusion(y_true, y_pred, classes=classes)
    total = float(m.sum())
    if total == 0:
        raise ConfigError("No reference pixel has a class of the matrix; check the labels and class list.")
    po = float(np.trace(m)) / total
    pe = float((m.sum(axis=0) * m.sum(axis=1)).sum()) / total**2
    per = per_class_metrics(m, classes=classes)
    f1s = [v["f1"] for v in per.values() if v["f1"] is not None and v["support"]]
    report: dict[str, Any] = {
        "classes": list(classes),
        "confusion_matrix": m.tolist(),
        "matrix_convention": "rows = reference, columns = map",
        "n": int(total),
        "overall_accuracy": po,
        "kappa": (po - pe) / (1 - pe) if pe < 1 else None,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "per_class": per,
        "positive_class": positive,
        "positive_specificity": per[positive]["specificity"] if positive in per else None,
    }
    if mapped_area_ha is not None:
        report["area_adjusted"] = area_adjusted(m, classes=classes, mapped_area_ha=mapped_area_ha)
    return report


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def report_markdown(report: Mapping[str, Any], *, title: str = "Accuracy report") -> str:
    """The report as a Markdown document (tables of the matrix and per-class metrics)."""
    classes = report["classes"]
    lines = [f"# {title}", ""]
    for key in ("model", "dataset", "split"):
        if key in report:
            lines.append(f"- {key}: {report[key]}")
    lines += [
        f"- pixels: {report['n']}; overall accuracy {_fmt(report['overall_accuracy'])}; "
        f"kappa {_fmt(report['kappa'])}; macro F1 {_fmt(report['macro_f1'])}",
        f"- specificity of `{report['positive_class']}`: {_fmt(report['positive_specificity'])}",
        "",
        "## Confusion matrix (rows = reference, columns = map)",
        "",
        "| reference \\ map | " + " | ".join(classes) + " |",
        "|---|" + "---:|" * len(classes),
    ]
    for c, row in zip(classes, report["confusion_matrix"], strict=True):
        lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "## Per class", "", "| class | precision | recall | F1 | specificity | support |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for c, v in report["per_class"].items():
        lines.append(
            f"| {c} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | "
            f"{_fmt(v['specificity'])} | {int(v['support'] or 0)} |"
        )
    aa = report.get("area_adjusted")
    if aa:
        lines += [
            "",
            "## Area-adjusted (Olofsson et al. 2014; strata = map classes)",
            "",
            f"Overall accuracy {_fmt(aa['overall_accuracy'])} ± {_fmt(aa['overall_ci95'])} (95 % CI)",
            "",
            "| class | mapped ha | adjusted ha | ± 95 % ha | user's | producer's |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for c, v in aa["classes"].items():
            lines.append(
                f"| {c} | {v['mapped_area_ha']:.1f} | {v['area_ha']:.1f} | {v['area_ci95_ha']:.1f} | "
                f"{_fmt(v['users_accuracy'])} | {_fmt(v['producers_accuracy'])} |"
            )
    for note in report.get("notes", []):
        lines += ["", f"> {note}"]
    return "\n".join(lines) + "\n"


def pixel_area_ha(transform: Any, crs: Any, height: int) -> np.ndarray:
    """Area of one pixel in each row (ha), ``(height,)``: exact on the WGS84 ellipsoid for
    geographic grids, ``|a * e|`` for projected (metre) grids."""
    from pyproj import CRS, Geod

    crs = CRS.from_user_input(crs)
    if not crs.is_geographic:
        return np.full(height, abs(transform.a * transform.e) / 1e4)
    geod = Geod(ellps="WGS84")
    out = np.empty(height)
    for r in range(height):
        x0, y0 = transform * (0, r)
        x1, y1 = transform * (1, r + 1)
        area, _ = geod.polygon_area_perimeter([x0, x1, x1, x0], [y0, y0, y1, y1])
        out[r] = abs(area) / 1e4
    return out
