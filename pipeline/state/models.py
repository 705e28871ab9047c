"""Model and calibration artefacts on disk: written by asm-monitor, checked on load.

A classifier is two files: ``NAME.skops`` (the fitted estimator serialised with skops,
which rebuilds objects from an allow-list of types and never runs pickle) and
``NAME.json`` (provenance: training-data fingerprint, features, classes, library versions,
metrics, code version, and the SHA-256 of the ``.skops`` file). The provenance is also
embedded in the ``.skops`` file, so editing either file alone is detected. Loading refuses
a file whose hash, provenance or types do not match, with :class:`ModelError`. For
protection against someone who rewrites both files, pin the hash in config
(``detect.model_sha256``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import sklearn
import skops
import skops.io as sio

from pipeline.core.atomic import write_with
from pipeline.core.errors import DataNotFoundError, ModelError
from pipeline.detect.classify import PixelClassifier
from pipeline.detect.turbidity import TurbidityCalibration

log = logging.getLogger(__name__)


def _write_atomic(path: Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


ARTEFACT_FORMAT = "asm-monitor-pixel-classifier/1"
#: Types skops may rebuild beyond its own safe defaults; anything else is refused.
ALLOWED_TYPES = frozenset({"sklearn.tree._tree.Tree", "sklearn.tree._classes.DecisionTreeClassifier"})


def _canonical(provenance: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in provenance.items() if k != "sha256"}, sort_keys=True, default=str)


def save_artefact(
    content: dict[str, Any], path: Path, *, provenance: dict[str, Any], artefact_format: str
) -> dict[str, Any]:
    """Write ``content`` (plain values and scikit-learn objects) to ``path`` with skops and
    its provenance to ``path.with_suffix('.json')``; the provenance is embedded too, so
    editing either file alone is detected. Returns the provenance with the file's ``sha256``."""
    prov = {
        **provenance,
        "format": artefact_format,
        "sklearn_version": sklearn.__version__,
        "skops_version": skops.__version__,
    }
    blob = sio.dumps({**content, "provenance": _canonical(prov)})
    _write_atomic(path, blob)
    prov["sha256"] = hashlib.sha256(blob).hexdigest()
    _write_atomic(
        path.with_suffix(".json"), (json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n").encode()
    )
    log.info("model written to %s (sha256 %s)", path, prov["sha256"][:12])
    return prov


def read_provenance(path: Path) -> dict[str, Any]:
    """The provenance sidecar of a model file (not yet checked against the model)."""
    side = path.with_suffix(".json")
    if not path.is_file() or not side.is_file():
        raise ModelError(
            f"Model {path} or its provenance {side} is missing. Train one with `asm-monitor train`."
        )
    try:
        prov: dict[str, Any] = json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"Provenance {side} is not valid JSON ({exc}). Retrain with `asm-monitor train`."
        ) from exc
    return prov


def _check_digest(path: Path, blob: bytes, prov: dict[str, Any], *, expected_sha256: str | None) -> None:
    digest = hashlib.sha256(blob).hexdigest()
    if digest != prov.get("sha256"):
        raise ModelError(
            f"Model {path} has SHA-256 {digest[:12]}..., its provenance says "
            f"{str(prov.get('sha256'))[:12]}...: "
            "the file was changed after training. Retrain with `asm-monitor train`."
        )
    if expected_sha256 and digest != expected_sha256:
        raise ModelError(
            f"Model {path} has SHA-256 {digest[:12]}..., config pins {expected_sha256[:12]}...: "
            "update detect.model_sha256 or use the pinned model."
        )


def load_artefact(
    path: Path, *, artefact_format: str, allowed_types: frozenset[str], expected_sha256: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load what :func:`save_artefact` wrote, refusing anything else; returns the content
    and the provenance.

    Raises
    ------
    ModelError
        Missing files; another format; SHA-256 differs from the provenance (or from
        ``expected_sha256``); provenance not matching the embedded copy; types outside
        ``allowed_types``; another scikit-learn version.
    """
    prov = read_provenance(path)
    if prov.get("format") != artefact_format:
        raise ModelError(
            f"{path} is not an asm-monitor {artefact_format} artefact (format {prov.get('format')!r}). "
            "Retrain it with `asm-monitor train`."
        )
    blob = path.read_bytes()
    _check_digest(path, blob, prov, expected_sha256=expected_sha256)
    try:
        untrusted = set(sio.get_untrusted_types(data=blob))
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is not a skops file written by asm-monitor ({exc}). Refused.") from exc
    if untrusted - allowed_types:
        raise ModelError(
            f"Model {path} holds types {sorted(untrusted - allowed_types)} we never write. Refused."
        )
    if prov.get("sklearn_version") != sklearn.__version__:
        raise ModelError(
            f"Model {path} was trained with scikit-learn {prov.get('sklearn_version')}, this is "
            f"{sklearn.__version__}: retrain with `asm-monitor train`."
        )
    obj = sio.loads(blob, trusted=sorted(untrusted))
    if not isinstance(obj, dict) or obj.get("provenance") != _canonical(prov):
        raise ModelError(f"Provenance {path.with_suffix('.json')} does not match the model file. Retrain it.")
    return obj, prov


def save_model(model: PixelClassifier, path: Path, *, provenance: dict[str, Any]) -> dict[str, Any]:
    """Write a pixel classifier to ``path`` (.skops) and its provenance beside it.

    Returns the provenance as written, including ``sha256`` of the model file.
    """
    prov = {
        **provenance,
        "features": list(model.features),
        "classes": list(model.classes),
        "sensor": model.sensor,
        "estimator": type(model.estimator).__name__,
    }
    content = {
        "estimator": model.estimator,
        "features": list(model.features),
        "classes": list(model.classes),
        "sensor": model.sensor,
    }
    return save_artefact(content, path, provenance=prov, artefact_format=ARTEFACT_FORMAT)


def load_model(path: Path, *, expected_sha256: str | None = None) -> tuple[PixelClassifier, dict[str, Any]]:
    """Load a pixel classifier written by :func:`save_model`, refusing anything else (see
    :func:`load_artefact`)."""
    obj, prov = load_artefact(
        path, artefact_format=ARTEFACT_FORMAT, allowed_types=ALLOWED_TYPES, expected_sha256=expected_sha256
    )
    model = PixelClassifier(
        estimator=obj["estimator"],
        features=tuple(obj["features"]),
        classes=tuple(obj["classes"]),
        sensor=str(obj["sensor"]),
    )
    return model, prov


DEFAULT_CALIBRATION = "data/turbidity_calibration.json"


def load_turbidity_calibration(path: Path | None = None) -> TurbidityCalibration:
    """A turbidity calibration (JSON from ``asm-monitor calibrate-turbidity``); default: the
    one shipped in ``pipeline/data``."""
    if path is None:
        text = resources.files("pipeline").joinpath(DEFAULT_CALIBRATION).read_text(encoding="utf-8")
    elif not path.is_file():
        raise DataNotFoundError(
            f"Turbidity calibration {path} does not exist. Run `asm-monitor calibrate-turbidity`."
        )
    else:
        text = path.read_text(encoding="utf-8")
    try:
        return TurbidityCalibration.from_dict(json.loads(text))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"Turbidity calibration {path or DEFAULT_CALIBRATION} is malformed ({exc}). Refit it."
        ) from exc


def save_turbidity_calibration(calibration: TurbidityCalibration, path: Path) -> Path:
    """Write a calibration as JSON (atomically)."""
    return _write_atomic(path, (json.dumps(calibration.to_dict(), indent=2, sort_keys=True) + "\n").encode())
