"""Load and validate AOI definitions.

An AOI file is a GeoJSON Feature whose properties hold ``aoi_id``, ``name``,
``designation``, ``country``, optional ``wdpa_id`` and ``protected``, and ``inputs`` (what to
read for it). The geometry is either drawn in the file or taken from a feature of a larger
boundary file with ``"boundary": {"path": ..., "match": {"name": "Munduruku"}}`` (the path is
relative to the sample-data folder), so no boundary data is copied into the repo.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.config import Settings
from pipeline.core.errors import AoiError, ConfigError, PipelineError
from pipeline.core.geometry import utm_zones as utm_zones
from pipeline.core.records import Aoi
from pipeline.ingest.aoi_collection import is_collection, load_collection
from pipeline.ingest.aoi_doc import AOI_ID_RE as AOI_ID_RE
from pipeline.ingest.aoi_doc import MAX_FILE_MB, check_properties, read_feature
from pipeline.ingest.aoi_geometry import aoi_geometry, check_area
from pipeline.ingest.aoi_inputs import check_inputs
from pipeline.ingest.site_patches import with_site_scenes
from pipeline.ingest.sources import with_source

log = logging.getLogger(__name__)


def load_aoi(
    path: Path,
    *,
    sample_data: Path,
    repair: bool = False,
    max_km2: float = 200_000.0,
    max_file_mb: float = MAX_FILE_MB,
    allow_absolute_paths: bool = False,
) -> Aoi:
    """Read and validate one AOI definition.

    Parameters
    ----------
    path
        GeoJSON Feature (or a FeatureCollection with exactly one feature), UTF-8.
    sample_data
        Folder that ``boundary.path`` and ``inputs`` are relative to (and must stay in).
    repair
        Repair an invalid geometry with ``shapely.make_valid`` instead of refusing it.
    max_km2
        Largest accepted area (km^2, equal-area).
    max_file_mb
        Largest accepted file (MB; ``Settings.max_aoi_file_mb``).
    allow_absolute_paths
        Accept input paths outside ``sample_data`` (``ingest.allow_absolute_paths``).

    Raises
    ------
    AoiError
        With the fix in the message: unreadable or oversized file, bad JSON, bad id, types,
        CRS, coordinates, geometry, size, or an input path outside the sample data.
    """
    doc = read_feature(path, max_file_mb=max_file_mb)
    props: dict[str, Any] = dict(doc.get("properties") or {})
    if is_collection(props):
        raise AoiError(
            f"AOI file {path} is an AOI collection (one AOI per feature of "
            f"{props['collection'].get('path') if isinstance(props['collection'], dict) else '?'}). "
            "Load it with load_aois / `asm-monitor aoi list`, or name one member with `--aoi <id>`."
        )
    aoi_id = check_properties(props, where=f"AOI file {path}")
    where = f"AOI '{aoi_id}' ({path})"
    inputs = check_inputs(
        props.get("inputs"), root=sample_data, allow_absolute=allow_absolute_paths, where=where
    )
    geom = aoi_geometry(
        doc,
        props=props,
        sample_data=sample_data,
        where=where,
        repair=repair,
        allow_absolute=allow_absolute_paths,
    )
    inputs = with_site_scenes(inputs, sample_data=sample_data, within=geom)
    aoi = Aoi(
        aoi_id=aoi_id,
        name=props["name"],
        designation=props["designation"],
        country=props["country"],
        wdpa_id=(str(props["wdpa_id"]) if props.get("wdpa_id") else None),
        protected=props.get("protected", False),
        geometry=geom,
        inputs=inputs,
        source_path=str(path),
        names=dict(props.get("names") or {}),
        protection=props.get("protection"),
    )
    check_area(geom, where=where, max_km2=max_km2)
    return aoi


def load_aoi_file(path: Path, *, settings: Settings, repair: bool = False) -> Aoi:
    """:func:`load_aoi` with the limits and the data folder of ``settings``; an AOI whose scenes
    come from a remote source carries the ingest settings (:func:`~pipeline.ingest.sources.with_source`)."""
    aoi = load_aoi(
        path,
        sample_data=settings.sample_data,
        repair=repair,
        max_km2=settings.max_aoi_km2,
        max_file_mb=settings.max_aoi_file_mb,
        allow_absolute_paths=settings.ingest.allow_absolute_paths,
    )
    return dataclasses.replace(aoi, inputs=with_source(aoi.inputs, settings=settings))


def list_aoi_files(aoi_dir: Path) -> list[Path]:
    """AOI definition files in ``aoi_dir``, sorted by name (symlinks included: see
    :func:`load_aois`)."""
    return sorted(p for p in Path(aoi_dir).glob("*.geojson") if p.is_file())


@dataclass(frozen=True)
class AoiLoadFailure:
    """An AOI file that could not be loaded: that AOI's failure, not the night's."""

    path: Path
    """The file."""
    message: str
    """What is wrong and how to fix it."""
    label: str | None = None
    """``<file>#<member id>`` for one member of a collection."""

    @property
    def name(self) -> str:
        """How the failure is named in the run ledger and the summary: the file name
        (``.geojson`` included, so it never collides with a valid ``aoi_id``), with
        ``#<id>`` for a member of a collection."""
        return self.label or self.path.name


@dataclass(frozen=True)
class LoadedAois:
    """The AOIs of a set of files, and the files that failed."""

    aois: list[Aoi]
    failures: list[AoiLoadFailure]


def _outside_aoi_dir(path: Path, settings: Settings) -> str | None:
    folder = Path(settings.aoi_dir).resolve()
    if settings.ingest.allow_absolute_paths or Path(path).parent.resolve() != folder:
        return None  # a file named on purpose, not one found in the AOI folder
    target = Path(path).resolve()
    if target.is_relative_to(folder):
        return None
    return (
        f"AOI file {path} is a symlink to {target}, outside the AOI folder {settings.aoi_dir}. "
        "Copy the file into the folder instead, or set ingest.allow_absolute_paths = true."
    )


def load_aois(files: Sequence[Path], *, settings: Settings) -> LoadedAois:
    """Load every file; a bad file is recorded as that AOI's failure and the others go on.

    Raises
    ------
    ConfigError
        Two files define the same ``aoi_id`` (their outputs and ledger rows would collide);
        both files are named.
    """
    aois: list[Aoi] = []
    failures: list[AoiLoadFailure] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            problem = _outside_aoi_dir(path, settings)
            if problem:
                raise AoiError(problem)
            found, failed = load_aoi_entries(path, settings=settings)
        except PipelineError as exc:
            log.error("%s", exc)
            failures.append(AoiLoadFailure(Path(path), str(exc)))
            continue
        except Exception as exc:  # a bug on one file must not stop the night's other AOIs
            log.exception("AOI file %s could not be loaded", path)
            failures.append(AoiLoadFailure(Path(path), f"AOI file {path}: {type(exc).__name__}: {exc}"))
            continue
        failures += failed
        for aoi in found:
            if aoi.aoi_id in seen:
                raise ConfigError(
                    f"aoi_id '{aoi.aoi_id}' is defined twice: in {seen[aoi.aoi_id]} and in {path}. "
                    "Give each AOI file its own aoi_id (or remove one of the files)."
                )
            seen[aoi.aoi_id] = Path(path)
            aois.append(aoi)
    return LoadedAois(aois=aois, failures=failures)


def load_aoi_entries(path: Path, *, settings: Settings) -> tuple[list[Aoi], list[AoiLoadFailure]]:
    """The AOIs one file defines: itself, or every member of a collection
    (:mod:`pipeline.ingest.aoi_collection`) with the members that failed."""
    props = read_feature(path, max_file_mb=settings.max_aoi_file_mb).get("properties") or {}
    if not isinstance(props, dict) or not is_collection(props):
        return [load_aoi_file(path, settings=settings)], []
    members, failed = load_collection(
        path,
        props,
        sample_data=settings.sample_data,
        max_km2=settings.max_aoi_km2,
        allow_absolute_paths=settings.ingest.allow_absolute_paths,
    )
    aois = [dataclasses.replace(a, inputs=with_source(a.inputs, settings=settings)) for a in members]
    return aois, [AoiLoadFailure(Path(path), f.message, label=f.name) for f in failed]


def is_collection_file(path: Path, *, settings: Settings) -> bool:
    """True when ``path`` is a readable AOI collection file (False for anything else)."""
    try:
        props = read_feature(path, max_file_mb=settings.max_aoi_file_mb).get("properties") or {}
    except PipelineError:
        return False
    return isinstance(props, dict) and is_collection(props)


def find_aoi(path: Path, aoi_id: str, *, settings: Settings) -> Aoi:
    """The AOI ``aoi_id`` defined by ``path`` (an AOI file, or a collection holding it)."""
    found, failed = load_aoi_entries(path, settings=settings)
    for aoi in found:
        if aoi.aoi_id == aoi_id:
            return aoi
    why = next((f.message for f in failed if f.name.endswith(f"#{aoi_id}")), None)
    raise AoiError(why or f"{path} defines no AOI '{aoi_id}'. See `asm-monitor aoi list`.")
