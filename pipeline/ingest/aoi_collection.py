"""AOI collections: one AOI file that yields one AOI per feature of a boundary file.

The 237 mining-affected indigenous territories of the Amazon basin are one file, not 237:

.. code-block:: json

    {"type": "Feature", "geometry": null, "properties": {
      "collection": {
        "id": "amazon-indigenous-territories",
        "path": "boundaries/indigenous_territories_mining_affected.geojson",
        "id_column": "id", "id_prefix": "it-",
        "name_columns": ["name_field", "ethnicities_field"],
        "designation_column": "type_field", "country_column": "country",
        "protection": "indigenous", "repair": true},
      "protected": true,
      "inputs": {"detections": {"path": "detections/amw_basin/amw_mining_amazon_*.geojson",
                                "format": "amw"}}}}

Each feature becomes an AOI with the id ``<id_prefix><id_column value>`` (lower-cased, every
character outside ``a-z0-9_-`` replaced by ``-``), so ids are stable as long as the register's
ids are; the name is the first non-empty of ``name_columns`` (the id when all are empty). The
AOI file's ``protected``, ``protection``, ``names`` and ``inputs`` apply to every member;
``protection_column`` with ``protection_values`` (e.g. ``{"PI": "strict", "US":
"sustainable_use"}``) takes a member's category from the register instead. A feature that
fails (bad geometry, a duplicate id, too large) is that AOI's failure; the others load.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd

from pipeline.core.errors import AoiError, PipelineError
from pipeline.core.records import PROTECTION_CATEGORIES, Aoi
from pipeline.ingest.aoi_doc import AOI_ID_RE
from pipeline.ingest.aoi_geometry import check_area, check_coordinates, check_geometry, read_boundaries
from pipeline.ingest.aoi_inputs import check_boundary, check_inputs
from pipeline.ingest.paths import resolve_input

log = logging.getLogger(__name__)

_REQUIRED = ("id", "path", "id_column")


@dataclass(frozen=True)
class MemberFailure:
    """One feature of a collection that could not become an AOI."""

    name: str
    """``<file name>#<feature id>``: how the failure is named in the run ledger."""
    message: str


def is_collection(props: Mapping[str, Any]) -> bool:
    """True when an AOI file's properties define a collection."""
    return "collection" in props


def member_id(prefix: str, value: Any) -> str:
    """The AOI id of a collection member: ``prefix`` + the register id, lower-cased, with
    every character outside ``a-z0-9_-`` replaced by ``-``."""
    return prefix + re.sub(r"[^a-z0-9_-]", "-", str(value).strip().lower())


def _spec(props: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    spec = props["collection"]
    if not isinstance(spec, dict):
        raise AoiError(f"{where}: 'collection' must be an object with {', '.join(_REQUIRED)}; got {spec!r}.")
    missing = [k for k in _REQUIRED if not isinstance(spec.get(k), str) or not spec[k]]
    if missing:
        raise AoiError(f'{where}: \'collection\' lacks {missing} (text). Add them, e.g. "id_column": "id".')
    if not AOI_ID_RE.fullmatch(spec["id"]):
        raise AoiError(f"{where}: collection id {spec['id']!r} must be lower-case letters, digits, '-', '_'.")
    protection = spec.get("protection", props.get("protection"))
    if protection is not None and protection not in PROTECTION_CATEGORIES:
        raise AoiError(f"{where}: 'protection' must be one of {', '.join(PROTECTION_CATEGORIES)}.")
    values = spec.get("protection_values") or {}
    bad = {k: v for k, v in values.items() if v not in PROTECTION_CATEGORIES}
    if bad:
        raise AoiError(f"{where}: protection_values {bad} must map to {', '.join(PROTECTION_CATEGORIES)}.")
    return dict(spec)


def _read_register(
    spec: Mapping[str, Any], *, root: Path, allow_absolute: bool, where: str
) -> gpd.GeoDataFrame:
    checked = check_boundary({"path": spec["path"]}, root=root, allow_absolute=allow_absolute, where=where)
    path = resolve_input(str(checked["path"]), root=root)
    frame = read_boundaries(path, what="collection file", where=where)
    columns = [spec["id_column"], *spec.get("name_columns", [])]
    columns += [spec[k] for k in ("designation_column", "country_column", "protection_column") if spec.get(k)]
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise AoiError(
            f"{where}: collection file {path} has no column {absent}. "
            f"Columns: {', '.join(map(str, frame.columns))}."
        )
    for column, value in dict(spec.get("match") or {}).items():
        frame = frame[frame[column] == value]
    return frame


def _text(row: Mapping[str, Any], column: str | None, default: str) -> str:
    value = str(row.get(column) if column else None).strip()
    return default if value in ("", "nan", "None") else value


def _protection(row: Mapping[str, Any], spec: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    column = spec.get("protection_column")
    if column:
        return dict(spec.get("protection_values") or {}).get(str(row.get(column)))
    value = spec.get("protection", props.get("protection"))
    return str(value) if value is not None else None


# long: one loop over the register's rows, each a guarded member; splitting it hides the flow
def load_collection(
    path: Path,
    props: Mapping[str, Any],
    *,
    sample_data: Path,
    max_km2: float,
    allow_absolute_paths: bool = False,
) -> tuple[list[Aoi], list[MemberFailure]]:
    """Every member AOI of the collection file ``path`` (whose properties are ``props``) and
    the members that failed. The file as a whole failing (unreadable register, bad spec)
    raises :class:`AoiError`."""
    where = f"AOI collection {path}"
    spec = _spec(props, where=where)
    inputs = check_inputs(
        props.get("inputs"), root=sample_data, allow_absolute=allow_absolute_paths, where=where
    )
    frame = _read_register(spec, root=sample_data, allow_absolute=allow_absolute_paths, where=where)
    repair = bool(spec.get("repair", False))
    aois: list[Aoi] = []
    failures: list[MemberFailure] = []
    seen: dict[str, str] = {}
    prefix = str(spec.get("id_prefix", ""))
    for row in frame.to_dict("records"):
        raw_id = row.get(spec["id_column"])
        aoi_id = member_id(prefix, raw_id)
        label = f"{Path(path).name}#{aoi_id}"
        try:
            if raw_id is None or not AOI_ID_RE.fullmatch(aoi_id):
                raise AoiError(f"{where}: feature id {raw_id!r} gives no usable AOI id ({aoi_id!r}).")
            if aoi_id in seen:
                raise AoiError(
                    f"{where}: features {seen[aoi_id]!r} and {raw_id!r} both give AOI id {aoi_id!r}; "
                    'the register\'s ids must be unique (or filter with "match").'
                )
            seen[aoi_id] = str(raw_id)
            member_where = f"AOI '{aoi_id}' ({label})"
            geom = row["geometry"]
            if geom is None or geom.is_empty:
                raise AoiError(f"{member_where}: the feature has no geometry.")
            check_coordinates(geom, member_where)
            geom = check_geometry(geom, where=member_where, repair=repair)
            check_area(geom, where=member_where, max_km2=max_km2)
            names = [_text(row, c, "") for c in spec.get("name_columns", [])]
            aois.append(
                Aoi(
                    aoi_id=aoi_id,
                    name=next((n for n in names if n), str(raw_id)),
                    designation=_text(row, spec.get("designation_column"), str(props.get("designation", ""))),
                    country=_text(row, spec.get("country_column"), str(props.get("country", ""))),
                    wdpa_id=str(raw_id),
                    protected=bool(props.get("protected", False)),
                    geometry=geom,
                    inputs=dict(inputs),
                    source_path=str(path),
                    protection=_protection(row, spec, props),
                    collection=spec["id"],
                )
            )
        except PipelineError as exc:
            log.error("%s", exc)
            failures.append(MemberFailure(label, str(exc)))
        except Exception as exc:  # one feature's bug must not stop the collection's others
            log.exception("collection member %s could not be loaded", label)
            failures.append(MemberFailure(label, f"{label}: {type(exc).__name__}: {exc}"))
    log.debug("AOI collection %s: %d AOIs, %d failed", spec["id"], len(aois), len(failures))
    return aois, failures
