"""Ranges and vocabularies of the settings, checked when settings are loaded: a bad value is
a :class:`~pipeline.core.errors.ConfigError` (exit 2) before anything runs or is saved.

The vocabularies are kept here because ``core`` imports nothing of ours; a test holds them
equal to their owners (``comply.flags.SEVERITY_ORDER``, the catalogues in
``pipeline/data/i18n``, the in-process schedulers of ``ops.cluster``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from pipeline.core.errors import ConfigError

#: Languages of maps and alerts (one catalogue per language in pipeline/data/i18n).
LANGUAGES = ("en", "es", "pt", "fr")
#: Flag severities, lowest first (comply.flags.SEVERITY_ORDER).
SEVERITIES = ("info", "low", "medium", "high")
#: ``run.scheduler`` values that are not an address: a LocalCluster, or Dask's in-process
#: schedulers (threads, synchronous = one thread for debugging, processes = a process pool).
LOCAL_SCHEDULERS = ("local", "threads", "synchronous", "processes")
#: Address schemes of a running Dask scheduler (``tcp://HOST:PORT``).
SCHEDULER_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")
#: Scene sources (``ingest.source``).
SOURCES = ("local", "sentinelhub", "stac")
#: Sentinel Hub collections (``ingest.sh_collection``).
SH_COLLECTIONS = ("sentinel-2-l2a", "sentinel-2-l1c")
#: Mining detectors of imagery AOIs (``detect.detector``; ops.imagery_detect.DETECTORS).
DETECTORS = ("gold-change", "index-rules")
#: Smallest memory limit per LocalCluster worker: below it a worker cannot hold one chunk
#: and the run stalls instead of failing.
MIN_MEMORY_LIMIT = 256 * 2**20

Check = Callable[[Any], str | None]
"""A check returns None when the value is fine, else what it must be."""


def _at_least(low: float, *, note: str = "") -> Check:
    return lambda v: None if v >= low else f"must be >= {low:g}{note}"


def _above(low: float) -> Check:
    return lambda v: None if v > low else f"must be > {low:g}"


def _between(low: float, high: float, *, unit: str = "") -> Check:
    return lambda v: None if low <= v <= high else f"must be between {low:g} and {high:g}{unit}"


def _one_of(choices: tuple[str, ...]) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _sha256_or_empty(value: str) -> str | None:
    ok = value == "" or re.fullmatch(r"[0-9a-f]{64}", value.lower()) is not None
    return None if ok else "must be empty or 64 hexadecimal digits (`sha256sum MODEL`)"


def parse_memory_limit(value: str) -> int | None:
    """Bytes of a ``run.memory_limit`` such as ``4GiB`` (Dask's units); None for ``auto``.

    Raises
    ------
    ValueError
        When the text is not a size.
    """
    from dask.utils import parse_bytes

    if value.strip().lower() == "auto":
        return None
    return int(parse_bytes(value))


def _memory_limit(value: str) -> str | None:
    try:
        size = parse_memory_limit(value)
    except (ValueError, TypeError):
        return "must be 'auto' or a size such as 4GiB, 512MiB or 2GB"
    if size is not None and size < MIN_MEMORY_LIMIT:
        return "must be 'auto' or at least 256 MiB per worker (e.g. 4GiB)"
    return None


def _scheduler(value: str) -> str | None:
    if value in LOCAL_SCHEDULERS or (value.startswith(SCHEDULER_SCHEMES) and value.split("://", 1)[1]):
        return None
    return "is not a scheduler"


CHECKS: dict[str, Check] = {
    "lang": _one_of(LANGUAGES),
    "max_aoi_km2": _above(0),
    "max_aoi_file_mb": _above(0),
    "ingest.source": _one_of(SOURCES),
    "ingest.sh_collection": _one_of(SH_COLLECTIONS),
    "ingest.min_valid_fraction": _between(0, 1),
    "ingest.max_cloud_cover": _between(0, 100),
    "ingest.resolution_m": _above(0),
    "ingest.cloud_buffer_px": _at_least(0),
    "ingest.sh_max_px": _at_least(1),
    "ingest.sh_timeout_s": _above(0),
    "ingest.sh_max_attempts": _at_least(1),
    "ingest.sh_retry_sleep_s": _at_least(0),
    "ingest.sh_max_rate_retries": _at_least(0),
    "ingest.sh_threads": _at_least(1),
    "detect.ndvi_forest_min": _between(-1, 1),
    "detect.bare_ndvi_max": _between(-1, 1),
    "detect.bare_bsi_min": _between(-1, 1),
    "detect.water_mndwi_min": _between(-1, 1),
    "detect.turbid_fnu_min": _at_least(0),
    "detect.min_area_ha": _at_least(0),
    "detect.chunk_px": _at_least(16),
    "detect.model_sha256": _sha256_or_empty,
    "detect.detector": _one_of(DETECTORS),
    "detect.mining_model_sha256": _sha256_or_empty,
    "detect.change_baseline_steps": _at_least(1),
    "detect.change_confirm_after": _at_least(0),
    "detect.cleanup_radius_px": _at_least(0),
    "comply.near_site_m": _at_least(0),
    "comply.min_flag_area_ha": _at_least(0),
    "comply.footprint_cell_deg": lambda v: None if 0 < v <= 10 else "must be > 0 (and at most 10 degrees)",
    "comply.turbidity_ratio": _above(0),
    "comply.turbidity_floor_fnu": _at_least(0),
    "comply.worsening_growth_pct": _at_least(0),
    "comply.resolve_after_periods": _at_least(1),
    "alerts.min_severity": _one_of(SEVERITIES),
    "alerts.max_attempts": _at_least(1),
    "alerts.backoff_s": _at_least(0),
    "alerts.backoff_max_s": _at_least(0),
    "alerts.timeout_s": _above(0),
    "alerts.max_age_days": _at_least(0, note=" (0 = no backlog limit: every alert sent on its own)"),
    "alerts.smtp_port": _between(1, 65535),
    "run.workers": _at_least(0, note=" (0 = one worker per core)"),
    "run.threads_per_worker": _at_least(1),
    "run.memory_limit": _memory_limit,
    "run.connect_timeout_s": _above(0),
    "run.lock_wait_s": _at_least(0),
    "run.aoi_batch": _at_least(0, note=" (0 = every AOI in the main process)"),
}


def _fields(settings: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            yield from _fields(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def _where(dotted: str) -> str:
    if "." in dotted:
        section, key = dotted.split(".", 1)
        return f"[{section}] {key} in the config file, ASM_{section.upper()}__{key.upper()}"
    return f"{dotted} in the config file, ASM_{dotted.upper()}"


def _problem(dotted: str, value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    check = CHECKS.get(dotted)
    return check(value) if check is not None else None


def check_settings(settings: Any) -> None:
    """Refuse settings with a value out of range, not finite, or not in its vocabulary.

    Parameters
    ----------
    settings
        A :class:`pipeline.core.config.Settings`.

    Raises
    ------
    ConfigError
        Naming every bad field, its value, what it must be and where to fix it.
    """
    problems = []
    for dotted, value in _fields(settings):
        why = _problem(dotted, value)
        if why is not None:
            problems.append(
                f"setting {dotted} = {value!r}: {why}. Fix it ({_where(dotted)} or the command line)."
            )
    scheduler = settings.run.scheduler
    if _scheduler(scheduler) is not None:
        problems.append(
            f"Unknown scheduler {scheduler!r} (setting run.scheduler). Use "
            f"{', '.join(repr(s) for s in LOCAL_SCHEDULERS)} or a scheduler address such as "
            "tcp://10.0.0.5:8786."
        )
    if problems:
        lead = "Invalid setting: " if len(problems) == 1 else "Invalid settings:\n  "
        raise ConfigError(lead + "\n  ".join(problems))
