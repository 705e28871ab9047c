"""Which column mapping of ``formats.toml`` a registry file is written in.

``asm-monitor sites validate FILE`` reads a file nobody has described yet: a SIGMINE export
(``PROCESSO``, ``FASE``, ``NOME``...) read as our native schema rejects every row as "missing
site id". The mapping is recognised from the columns instead, and a mapping named on the
command line that does not fit the file is refused with the one that does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import geopandas as gpd

from pipeline.core.errors import ConfigError, RegistryError
from pipeline.ingest.vectors import format_spec, load_formats, read_vector

log = logging.getLogger(__name__)

AUTO = "auto"
#: Keys of a ``[registry.*]`` table that name a column of the file.
COLUMN_KEYS = (
    "site_id",
    "name",
    "operator",
    "licence_status",
    "licence_valid_from",
    "licence_valid_to",
    "mineral",
    "phase",
    "last_event",
    "declared_area_ha",
)


def guess_registry_format(columns: Iterable[str]) -> str | None:
    """The registry mapping whose site-id column the file has and that matches most of its
    columns; None when no mapping has its site-id column in ``columns``."""
    have = set(columns)
    scores = {}
    for name, spec in load_formats()["registry"].items():
        if spec.get("site_id", "site_id") not in have:
            continue
        mapped = {spec[k] for k in COLUMN_KEYS if isinstance(spec.get(k), str)}
        scores[name] = len(mapped & have)
    return max(sorted(scores), key=scores.__getitem__) if scores else None


def read_registry_file(
    path: Path, *, fmt: str = AUTO, encoding: str = "utf-8"
) -> tuple[gpd.GeoDataFrame, str]:
    """Read a registry file as it is (plus ``source_row`` and ``source_file``) and the name of
    its mapping: ``fmt``, or with ``auto`` the one recognised from its columns.

    Raises
    ------
    RegistryError
        With ``auto``, when no mapping fits the columns.
    ConfigError
        A named mapping whose site-id column the file lacks (naming the mapping that fits).
    """
    frame = read_vector(Path(path), error=RegistryError, encoding=encoding)
    frame["source_file"] = Path(path).name
    columns = [str(c) for c in frame.columns if c not in ("geometry", "source_row", "source_file")]
    guessed = guess_registry_format(columns)
    known = sorted(load_formats()["registry"])
    if fmt == AUTO:
        if guessed is None:
            raise RegistryError(
                f"{path}: its columns ({', '.join(columns)}) match no registry format "
                f"({', '.join(known)}). Pass --format NAME, or add a [registry.NAME] mapping to "
                "pipeline/data/formats.toml."
            )
        fmt = guessed
    else:
        site_col = format_spec("registry", fmt).get("site_id", "site_id")
        if site_col not in frame.columns:
            hint = f" Its columns fit format {guessed}: pass --format {guessed}." if guessed else ""
            raise ConfigError(
                f"{path} has no column '{site_col}' (format {fmt}), so no row has a site id.{hint} "
                f"Formats: {', '.join(known)} (or --format auto)."
            )
    log.info("registry %s: %d rows (format %s)", path, len(frame), fmt)
    return frame, fmt
