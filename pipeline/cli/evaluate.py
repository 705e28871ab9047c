"""``asm-monitor evaluate MODEL``: accuracy of a trained classifier on held-out polygons."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.cli.args import settings_from_args
from pipeline.cli.detector import evaluate_sites
from pipeline.core.errors import ModelError
from pipeline.detect.landcover import CLASS_CODES

POLYGON_NOTE = (
    "Reference pixels come from labelled polygons, not from a probability sample of the map, "
    "and pixels within one polygon are strongly correlated: treat the area-adjusted figures "
    "and confidence intervals as illustrative of the method, not as design-based estimates."
)


def _evaluate(args: argparse.Namespace) -> int:
    if args.sites:
        return evaluate_sites(args)
    from pipeline.detect.classify import classify_pixels, predict_labels
    from pipeline.detect.evaluate import accuracy_report, pixel_area_ha, report_markdown
    from pipeline.ingest.training import TrainingDataset, fingerprint_files, read_labelled_pixels
    from pipeline.state.models import load_model

    settings = settings_from_args(args)
    model, prov = load_model(args.model, expected_sha256=args.sha256)
    name = args.dataset or prov["dataset"]
    dataset = TrainingDataset.from_config(name, root=settings.sample_data)
    if dataset.sensor != model.sensor:
        raise ModelError(
            f"Model is for sensor {model.sensor}, data set {name} is {dataset.sensor}. Pick a match."
        )
    pixels, scene, polygons = read_labelled_pixels(dataset)
    own = name == prov["dataset"]
    if own and fingerprint_files(dataset.files()) != prov["training_data_sha256"]:
        raise ModelError(
            f"The files of data set {name} changed since the model was trained (fingerprint differs): "
            "held-out polygons may no longer be held out. Retrain with `asm-monitor train`."
        )
    test_ids = prov["test_polygons"] if own else polygons["polygon_id"].tolist()
    test = pixels[pixels["polygon_id"].isin(test_ids)]
    classes = list(model.classes)
    strata = None
    if not args.no_strata:
        cube = {b: xr.DataArray(a, dims=("y", "x")) for b, a in scene.bands.items()}
        codes = classify_pixels(cube, model=model)["landcover"].to_numpy()
        area = pixel_area_ha(scene.transform, scene.crs, codes.shape[0])[:, None] * np.ones(codes.shape[1])
        strata = {c: float(area[codes == CLASS_CODES[c]].sum()) for c in classes}
    report = accuracy_report(
        test["label"].to_numpy(), predict_labels(model, test), classes=classes, mapped_area_ha=strata
    )
    report.update(
        {
            "model": f"{args.model.name} sha256 {prov['sha256'][:16]} ({prov['estimator']}, "
            f"features {','.join(model.features)})",
            "dataset": name,
            "split": f"held-out polygons {test_ids}" if own else "all polygons (independent data set)",
            "training_metrics": prov.get("metrics", {}),
            "notes": [POLYGON_NOTE] if strata else [],
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"evaluation_{name}"
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    Path(f"{stem}.md").write_text(report_markdown(report, title=f"Accuracy: {name}"), encoding="utf-8")
    w = sys.stdout.write
    w(
        f"{name}: {report['split']}; {report['n']} px; overall accuracy {report['overall_accuracy']:.3f}, "
        f"kappa {report['kappa']:.3f}, bare_mining specificity {report['positive_specificity']:.3f}\n"
    )
    for c, v in report["per_class"].items():
        if v["support"]:
            w(
                f"  {c:<18} precision {v['precision'] or 0:.3f} recall {v['recall'] or 0:.3f} "
                f"F1 {v['f1'] or 0:.3f}\n"
            )
    if strata:
        aa = report["area_adjusted"]
        w(f"  area-adjusted overall accuracy {aa['overall_accuracy']:.3f} ± {aa['overall_ci95']:.3f}\n")
    w(f"  report: {stem}.json, {stem}.md\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate``."""
    p = sub.add_parser(
        "evaluate",
        help="accuracy of a trained detector or classifier",
        description="Confusion matrix, precision / recall / F1, mining specificity and "
        "Olofsson area-adjusted accuracy of MODEL on its held-out polygons (or on every "
        "polygon of another data set), as JSON + Markdown.",
    )
    p.add_argument("model", type=Path, help="MODEL.skops written by `asm-monitor train`")
    p.add_argument("--dataset", help="evaluate on this classes.toml data set (default: the training one)")
    p.add_argument(
        "--sites",
        help="gold-mining detector: every site of this folder (patches.csv, t0/, t1/); writes "
        "site_predictions.csv, and metrics when patches.csv has a 'mining' column",
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default reports/)")
    p.add_argument("--sha256", help="refuse the model unless its SHA-256 is this")
    p.add_argument("--no-strata", action="store_true", help="skip the area-adjusted (Olofsson) estimates")
    p.set_defaults(func=_evaluate)
