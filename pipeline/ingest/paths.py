"""Where the real sample data lives."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import DataNotFoundError


def sample_data_dir(path: Path) -> Path:
    """Check and return the sample-data folder (``Settings.sample_data``, which
    ``ASM_SAMPLE_DATA`` and ``--sample-data`` override)."""
    if not path.is_dir():
        raise DataNotFoundError(
            f"Sample data folder {path} does not exist. Put the shared data beside the repo "
            "(../shared/data) or set ASM_SAMPLE_DATA to its path."
        )
    return path


def resolve_input(relative: str, *, root: Path) -> Path:
    """Resolve ``relative`` (from an AOI's inputs) against the sample-data ``root``."""
    path = Path(relative)
    full = path if path.is_absolute() else root / path
    if not full.exists() and not any(full.parent.glob(full.name)):
        raise DataNotFoundError(
            f"Input {full} does not exist. Check the path in the AOI's 'inputs' or ASM_SAMPLE_DATA."
        )
    return full
