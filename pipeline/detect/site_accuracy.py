"""Site-level accuracy of a mining detector against labels: the confusion counts,
sensitivity, specificity, precision, F1 and ROC AUC, pooled and per group (country,
category), and the Markdown table a report shows.

A site without a score (too cloudy or no valid pixel at both dates) counts as *not
detected*: dropping it would flatter the detector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

METRIC_COLUMNS = (
    "n",
    "positives",
    "tp",
    "fp",
    "tn",
    "fn",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "auc",
)


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def site_metrics(labels: Iterable[int], scores: Iterable[float], detected: Iterable[int]) -> dict[str, float]:
    """Confusion counts and rates of ``detected`` (0/1) against ``labels`` (0/1), and ROC
    AUC of ``scores`` (NaN scores rank lowest; AUC is NaN when one class is absent)."""
    y = np.asarray(list(labels), dtype=int)
    d = np.asarray(list(detected), dtype=int)
    s = np.nan_to_num(np.asarray(list(scores), dtype=float), nan=-1.0)
    tp = int(((d == 1) & (y == 1)).sum())
    fp = int(((d == 1) & (y == 0)).sum())
    tn = int(((d == 0) & (y == 0)).sum())
    fn = int(((d == 0) & (y == 1)).sum())
    sens, prec = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    f1 = 2 * prec * sens / (prec + sens) if (prec + sens) and not math.isnan(prec + sens) else math.nan
    auc = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else math.nan
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": sens,
        "specificity": _ratio(tn, tn + fp),
        "precision": prec,
        "f1": f1,
        "auc": auc,
    }


def grouped_metrics(
    predictions: pd.DataFrame,
    *,
    by: str,
    label: str = "mining",
    score: str = "mining_score",
    detected: str = "detected",
) -> pd.DataFrame:
    """:func:`site_metrics` per value of ``by`` plus a ``pooled`` row over all rows."""
    rows = []
    for key, part in predictions.groupby(by, sort=True):
        rows.append({by: key, **site_metrics(part[label], part[score], part[detected])})
    rows.append({by: "pooled", **site_metrics(predictions[label], predictions[score], predictions[detected])})
    return pd.DataFrame(rows, columns=[by, *METRIC_COLUMNS])


def metrics_markdown(table: pd.DataFrame, *, title: str) -> str:
    """A Markdown table of :func:`grouped_metrics` (rates to 3 decimals)."""
    cols = list(table.columns)
    lines = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            cells.append(
                ""
                if isinstance(v, float) and math.isnan(v)
                else f"{v:.3f}"
                if isinstance(v, float)
                else str(v)
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
