"""The gold-mining change detector on the command line: ``train --dataset
gold_mining_patches``, ``evaluate MODEL --sites DIR`` and ``cross-validate``.

``train`` and ``evaluate`` route here from their own modules when given two-date sites;
``cross-validate`` is registered here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from pipeline.cli.args import settings_from_args
from pipeline.core.errors import ConfigError
from pipeline.detect.site_accuracy import grouped_metrics, metrics_markdown, site_metrics
from pipeline.ingest.paths import sample_data_dir
from pipeline.ops.detector_model import TRAINING_SITES, train_and_save
from pipeline.ops.site_evaluation import PREDICTION_COLUMNS, SiteData, leave_one_out, predict_sites
from pipeline.state.mining_models import load_mining_detector

#: ``--dataset`` names that mean the two-date site patches of the sample data.
SITE_DATASETS = {"gold_mining_patches": TRAINING_SITES}


def sites_folder(args: argparse.Namespace) -> Path:
    """``--sites DIR`` as given, or the sample data's folder of a ``--dataset`` name."""
    if getattr(args, "sites", None):
        return Path(args.sites)
    name = getattr(args, "dataset", None)
    if name not in SITE_DATASETS:
        raise ConfigError(
            f"Unknown site data set {name!r}; use one of {sorted(SITE_DATASETS)} or --sites DIR."
        )
    return sample_data_dir(settings_from_args(args).sample_data) / SITE_DATASETS[str(name)]


def train_sites(args: argparse.Namespace) -> int:
    """``asm-monitor train --dataset gold_mining_patches --out MODEL``."""
    folder = sites_folder(args)
    out = Path(args.out)
    if out.suffix != ".skops":
        out = out.with_suffix(".skops")
    prov = train_and_save(folder, out, dataset=str(args.dataset or folder.name), seed=args.seed)
    t = prov["training"]
    sys.stdout.write(
        f"trained the gold-mining detector ({prov['estimator']}) on {t['n_sites']} sites "
        f"({t['positives']} mining, {t['n_scored']} with enough clear pixels); window threshold "
        f"{t['threshold']:.3f} (Youden's J on {t['threshold_folds']} out-of-fold scores of the "
        "training sites)\n"
        f"  model {out}  sha256 {prov['sha256']}\n"
    )
    return 0


def evaluate_sites(args: argparse.Namespace) -> int:
    """``asm-monitor evaluate MODEL --sites DIR --out REPORT_DIR``."""
    settings = settings_from_args(args)
    detector, prov = load_mining_detector(args.model, expected_sha256=args.sha256)
    data = SiteData.read(Path(args.sites))
    pred = predict_sites(data, detector=detector, min_area_ha=settings.detect.min_area_ha)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pred.to_csv(out / "site_predictions.csv", index=False, columns=list(PREDICTION_COLUMNS))
    w = sys.stdout.write
    w(
        f"{len(pred)} sites: {int(pred['detected'].sum())} with mining detected "
        f"({out / 'site_predictions.csv'})\n"
    )
    if all(s.mining is not None for s in data.sites):
        pred["mining"] = data.labels()
        pooled = site_metrics(pred["mining"], pred["mining_score"], pred["detected"])
        report = {
            "model": str(args.model),
            "model_sha256": prov["sha256"],
            "sites": str(args.sites),
            **pooled,
        }
        (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        table = pd.DataFrame([{"sites": "all", **pooled}])
        (out / "metrics.md").write_text(
            metrics_markdown(table, title=f"Sites of {args.sites}"), encoding="utf-8"
        )
        w(
            f"  sensitivity {pooled['sensitivity']:.3f}  specificity {pooled['specificity']:.3f}  "
            f"precision {pooled['precision']:.3f}  F1 {pooled['f1']:.3f}  AUC {pooled['auc']:.3f}\n"
            f"  metrics: {out / 'metrics.json'}, {out / 'metrics.md'}\n"
        )
    return 0


def baseline_predictions(data: SiteData, *, min_area_ha: float) -> pd.DataFrame:
    """The simple baseline beside the model: a site is mining when the pixels that turned
    from vegetation to bare ground or water cover at least the minimum mapping unit
    (the detector's own pixel rule with no window model); the score is that fraction."""
    from pipeline.detect.window_features import refine_pixels, valid_pair

    rows = []
    for site, b, a in zip(data.sites, data.before, data.after, strict=True):
        valid = valid_pair(b.data, a.data)
        new = refine_pixels(b.data, a.data, valid=valid)
        hectares = float(new.sum()) * abs(b.transform.a * b.transform.e) / 1e4
        frac = float(new.sum() / valid.sum()) if valid.sum() else float("nan")
        rows.append((site.sample_id, frac, int(hectares >= min_area_ha), round(hectares, 4)))
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))


def cross_validate(args: argparse.Namespace) -> int:
    """``asm-monitor cross-validate``: leave one country out, model and baseline side by side."""
    settings = settings_from_args(args)
    data = SiteData.read(sites_folder(args))
    groups = [getattr(s, args.by) or "unknown" for s in data.sites]
    mmu = settings.detect.min_area_ha
    pred = leave_one_out(data, by=groups, min_area_ha=mmu, seed=args.seed)
    base = baseline_predictions(data, min_area_ha=mmu).assign(group=groups, mining=data.labels())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pred.to_csv(out / "heldout_predictions.csv", index=False)
    tables = {
        "model (detected: window score >= threshold and >= MMU of new mining pixels)": grouped_metrics(
            pred, by="group"
        ),
        "model, window decision only": grouped_metrics(
            pred.assign(detected=pred["window_detected"]), by="group"
        ),
        "baseline (NDVI drop to bare/water >= MMU)": grouped_metrics(base, by="group"),
        "model by category (specificity of negatives)": grouped_metrics(
            pred.assign(category=pred["category"].fillna("unknown")), by="category"
        ),
    }
    text = "".join(metrics_markdown(t, title=name) + "\n" for name, t in tables.items())
    (out / "cross_validation.md").write_text(
        f"# Leave-one-{args.by}-out cross-validation of the gold-mining detector\n\n{text}", encoding="utf-8"
    )
    pooled = {name: t.iloc[-1].to_dict() for name, t in tables.items()}
    (out / "cross_validation.json").write_text(
        json.dumps(pooled, indent=2, default=str) + "\n", encoding="utf-8"
    )
    sys.stdout.write(text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cross-validate``."""
    p = sub.add_parser(
        "cross-validate",
        help="leave-one-country-out accuracy of the gold-mining detector",
        description="Train on every group but one (a country), predict the held-out group's "
        "sites with the run's own detection function, for each group; report per group and "
        "pooled sensitivity, specificity, precision, F1 and ROC AUC, with the simple baseline.",
    )
    p.add_argument("--dataset", default="gold_mining_patches", help="site data set of the sample data")
    p.add_argument("--sites", help="a folder laid out like gold_mining_patches/ instead of --dataset")
    p.add_argument("--by", default="country", choices=["country"], help="group held out together")
    p.add_argument("--out", type=Path, default=Path("reports/cross_validation"), help="report folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cross_validate)
