"""The ``inputs`` and ``boundary`` of an AOI file: their shape, and paths kept inside the
sample-data folder.

An AOI file names files to read (scenes, external detections, the registry, a boundary).
Those paths are relative to the sample-data folder and must stay inside it: an absolute
path, a ``..`` that climbs out, or a symlink that leads out is refused unless the operator
sets ``ingest.allow_absolute_paths = true``, so an AOI file dropped into ``aoi/`` cannot make
a run read (and copy into its outputs) any file the process can see.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.core.errors import AoiError
from pipeline.ingest.vectors import load_formats

_ALLOW_HINT = (
    "Put the file under the sample-data folder and give its path relative to it, or set "
    "ingest.allow_absolute_paths = true (ASM_INGEST__ALLOW_ABSOLUTE_PATHS=true) to read files "
    "elsewhere on purpose."
)
_GLOB_CHARS = frozenset("*?[")


def json_kind(value: Any) -> str:
    """How a JSON value reads in an error: ``a JSON array``, ``JSON null``..."""
    if value is None:
        return "JSON null"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, list):
        return "a JSON array"
    return "a JSON object"


def confine(relative: str, *, root: Path, allow_absolute: bool, what: str, where: str) -> None:
    """Refuse ``relative`` (a path or glob from an AOI file) unless it stays inside ``root``.

    Parameters
    ----------
    relative
        The path as written in the AOI file.
    root
        The sample-data folder.
    allow_absolute
        ``ingest.allow_absolute_paths``: accept any path.
    what, where
        The property (``inputs.registry.path``) and the AOI file, for the message.

    Raises
    ------
    AoiError
        An absolute path, or one that resolves (through ``..`` or symlinks, including those
        of every file a glob matches) outside ``root``.
    """
    if allow_absolute:
        return
    if Path(relative).is_absolute():
        raise AoiError(f"{where}: {what} {relative!r} is an absolute path. {_ALLOW_HINT}")
    base = Path(root).resolve()
    full = Path(root) / relative
    candidates = [full]
    if _GLOB_CHARS & set(relative):
        candidates += [Path(p) for p in sorted(glob.glob(str(full)))]
    for candidate in candidates:
        resolved = candidate.resolve()
        if not resolved.is_relative_to(base):
            via = "a symlink" if candidate.is_symlink() or ".." not in Path(relative).parts else "'..'"
            raise AoiError(
                f"{where}: {what} {relative!r}: {candidate} resolves to {resolved}, which leaves "
                f"the sample-data folder {root} (through {via}). {_ALLOW_HINT}"
            )


def _text(value: Any, *, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise AoiError(f"{where}: {what} must be text (a path), got {json_kind(value)} {value!r}. Fix it.")
    return value


def _object(value: Any, *, what: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AoiError(f"{where}: '{what}' must be an object {{...}}, got {json_kind(value)} {value!r}.")
    return value


def _format(spec: Mapping[str, Any], *, section: str, what: str, where: str, default: str | None) -> None:
    name = spec.get("format", default)
    known = sorted(load_formats()[section])
    if name is None:
        raise AoiError(f"{where}: {what}.format is missing. Add one of: {', '.join(known)}.")
    if name not in known:
        raise AoiError(
            f"{where}: {what} format {name!r} is not known. Use one of: {', '.join(known)} "
            "(or add a table to pipeline/data/formats.toml)."
        )


def _scenes(value: Any, *, root: Path, allow_absolute: bool, where: str) -> None:
    if not isinstance(value, list) or not all(isinstance(s, Mapping) for s in value):
        raise AoiError(
            f"{where}: inputs.scenes must be a list of objects like "
            f'{{"path": "imagery/scene.tif", "datetime": "2024-07-01"}}, got {json_kind(value)}.'
        )
    for i, scene in enumerate(value):
        what = f"inputs.scenes[{i}]"
        if scene.get("path") is not None:
            path = _text(scene["path"], what=f"{what}.path", where=where)
            confine(path, root=root, allow_absolute=allow_absolute, what=f"{what}.path", where=where)
        bands = _object(scene.get("bands") or {}, what=f"{what}.bands", where=where)
        for band, band_path in bands.items():
            text = _text(band_path, what=f"{what}.bands.{band}", where=where)
            confine(text, root=root, allow_absolute=allow_absolute, what=f"{what}.bands.{band}", where=where)


#: ``inputs.rivers`` numbers: (key, smallest value, whether the smallest is allowed)
_RIVER_NUMBERS = (("reach_m", 0.0, False), ("gap_m", 0.0, True), ("max_offset_m", 0.0, False))


def _rivers(value: Any, *, root: Path, allow_absolute: bool, where: str) -> None:
    """``inputs.rivers``: ``{"path": ..., "name_field", "direction", "reach_m", "gap_m",
    "max_offset_m"}`` (see :mod:`pipeline.ingest.rivers`)."""
    spec = _object(value, what="inputs.rivers", where=where)
    path = _text(spec.get("path"), what="inputs.rivers.path", where=where)
    confine(path, root=root, allow_absolute=allow_absolute, what="inputs.rivers.path", where=where)
    unknown = sorted(set(spec) - {"path", "name_field", "direction", "reach_m", "gap_m", "max_offset_m"})
    if unknown:
        raise AoiError(
            f"{where}: inputs.rivers has unknown key(s) {unknown}. Valid: path, name_field, direction, "
            "reach_m, gap_m, max_offset_m."
        )
    if spec.get("name_field") is not None:
        _text(spec["name_field"], what="inputs.rivers.name_field", where=where)
    if spec.get("direction", "as_drawn") not in ("as_drawn", "reversed"):
        raise AoiError(
            f'{where}: inputs.rivers.direction must be "as_drawn" (lines drawn upstream to '
            f'downstream) or "reversed", got {spec["direction"]!r}.'
        )
    for key, low, inclusive in _RIVER_NUMBERS:
        v = spec.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not (v >= low if inclusive else v > low):
            raise AoiError(
                f"{where}: inputs.rivers.{key} must be a number {'>=' if inclusive else '>'} {low:g} "
                f"(metres), got {json_kind(v)} {v!r}."
            )


def check_inputs(inputs: Any, *, root: Path, allow_absolute: bool, where: str) -> dict[str, Any]:
    """Validate an AOI's ``inputs`` (absent = none) and return them as a dict.

    Raises
    ------
    AoiError
        Wrong shape, unknown format, or a path outside the sample-data folder.
    """
    if inputs is None:
        return {}
    inputs = dict(_object(inputs, what="inputs", where=where))
    if "scenes" in inputs:
        _scenes(inputs["scenes"], root=root, allow_absolute=allow_absolute, where=where)
    if "site_patches" in inputs:
        spec = _object(inputs["site_patches"], what="inputs.site_patches", where=where)
        path = _text(spec.get("path"), what="inputs.site_patches.path", where=where)
        confine(path, root=root, allow_absolute=allow_absolute, what="inputs.site_patches.path", where=where)
    if "rivers" in inputs:
        _rivers(inputs["rivers"], root=root, allow_absolute=allow_absolute, where=where)
    for key, default in (("detections", "native"), ("registry", None)):
        if key not in inputs:
            continue
        spec = _object(inputs[key], what=f"inputs.{key}", where=where)
        path = _text(spec.get("path"), what=f"inputs.{key}.path", where=where)
        confine(path, root=root, allow_absolute=allow_absolute, what=f"inputs.{key}.path", where=where)
        _format(spec, section=key, what=f"inputs.{key}", where=where, default=default)
    return inputs


def check_boundary(boundary: Any, *, root: Path, allow_absolute: bool, where: str) -> Mapping[str, Any]:
    """Validate ``"boundary": {"path": ..., "match": {...}}`` and return it.

    Raises
    ------
    AoiError
        Wrong shape or a path outside the sample-data folder.
    """
    spec = _object(boundary, what="boundary", where=where)
    path = _text(spec.get("path"), what="boundary.path", where=where)
    _object(spec.get("match") or {}, what="boundary.match", where=where)
    confine(path, root=root, allow_absolute=allow_absolute, what="boundary.path", where=where)
    return spec
