"""One exception base for the whole pipeline, with narrow children.

Every message says what went wrong *and* how to fix it, e.g.
``AoiError("AOI 'x': ring 0 self-intersects at (-56.1, -1.4). Fix the polygon or load it
with repair=True.")``.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error asm-monitor raises on purpose."""

    #: exit code the CLI returns when this error reaches it
    exit_code: int = 1


class ConfigError(PipelineError):
    """Bad configuration: unknown key, wrong type, missing file or value."""

    exit_code = 2


class DataNotFoundError(PipelineError):
    """An input file or folder does not exist where it was expected."""

    exit_code = 2


class AoiError(PipelineError):
    """An AOI definition is invalid (geometry, CRS, id, size)."""


class RasterError(PipelineError):
    """A raster cannot be read or does not have the bands, CRS or extent needed."""


class NoDataError(PipelineError):
    """No usable observation for an AOI and period (all cloud, all nodata, no overlap)."""


class RegistryError(PipelineError):
    """The mine-site registry cannot be read or mapped to the MineSite schema."""


class DetectionSourceError(PipelineError):
    """External detections (AMW, GFW, DETER...) cannot be read or mapped."""


class RemoteServiceError(PipelineError):
    """A remote service (Sentinel Hub, webhook, SMTP) failed after retries."""


class LockHeldError(PipelineError):
    """Another run holds the output lock."""

    exit_code = 3


class ModelError(PipelineError):
    """A model artefact is missing, tampered with or was not written by asm-monitor."""


class LedgerError(PipelineError):
    """The audit ledger's hash chain is broken or the ledger cannot be written."""
