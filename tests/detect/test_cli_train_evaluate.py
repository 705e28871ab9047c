"""`asm-monitor train` then `asm-monitor evaluate` on the real labelled scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli.main import main


@pytest.mark.parametrize("dataset", ["trombetas_s2", "tucurui_l5"])
def test_train_then_evaluate(
    dataset: str, sample_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / f"{dataset}.skops"
    common = ["--sample-data", str(sample_data)]
    assert main([*common, "train", "--dataset", dataset, "--out", str(model)]) == 0
    prov = json.loads(model.with_suffix(".json").read_text())
    assert prov["dataset"] == dataset and not set(prov["train_polygons"]) & set(prov["test_polygons"])
    assert prov["sklearn_version"] and len(prov["training_data_sha256"]) == 64
    assert main([*common, "evaluate", str(model), "--out", str(tmp_path / "rep")]) == 0
    report = json.loads((tmp_path / "rep" / f"evaluation_{dataset}.json").read_text())
    m = np.array(report["confusion_matrix"])
    # the printed figures are the matrix's
    assert report["overall_accuracy"] == pytest.approx(np.trace(m) / m.sum())
    assert report["n"] == m.sum() == prov["metrics"]["held_out"]["n"]
    assert report["overall_accuracy"] > 0.8
    md = (tmp_path / "rep" / f"evaluation_{dataset}.md").read_text()
    assert "Olofsson" in md and "rows = reference" in md
    out = capsys.readouterr().out
    assert f"overall accuracy {report['overall_accuracy']:.3f}" in out
    # a tampered model is refused with the model error's exit code
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model.write_bytes(bytes(blob))
    assert main([*common, "evaluate", str(model), "--out", str(tmp_path / "rep2")]) == 1
