"""Settings: defaults < TOML file < environment (``ASM_*``) < command line.

A config file looks like::

    sample_data = "../shared/data"
    aoi_dir = "aoi"

    [detect]
    min_area_ha = 0.5

    [comply]
    near_site_m = 500

Environment variables name a top-level key as ``ASM_<KEY>`` (``ASM_SAMPLE_DATA``) and a
section key as ``ASM_<SECTION>__<KEY>`` (``ASM_DETECT__MIN_AREA_HA``). Unknown keys are an
error that names the nearest valid key, so a typo never silently falls back to a default.
Secrets (Sentinel Hub, webhook, SMTP) are never read from the file: see :class:`Secret`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.errors import ConfigError

ENV_PREFIX = "ASM_"
DEFAULT_SAMPLE_DATA = Path("../shared/data")


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or tracebacks.

    Read it with :meth:`reveal` at the one place that sends it over the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself; call only where it is sent."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')" if self._value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def secret_from_env(name: str) -> Secret:
    """Read a secret from the environment variable ``name`` (empty if unset)."""
    return Secret(os.environ.get(name, ""))


@dataclass(frozen=True, kw_only=True)
class IngestParams:
    """Where scenes come from and when a scene is usable."""

    source: str = "local"
    """Default scene source: ``local``, ``sentinelhub`` or ``stac``."""
    cache_dir: Path = Path(".asm-cache")
    """Download cache (Sentinel Hub responses keyed by request fingerprint)."""
    sh_base_url: str = "https://services.sentinel-hub.com"
    """Sentinel Hub API base URL (tests point it at a local server)."""
    sh_token_url: str = "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
    """OAuth token endpoint. Credentials come only from ASM_SH_CLIENT_ID / ASM_SH_CLIENT_SECRET."""
    min_valid_fraction: float = 0.1
    """Scenes with a smaller fraction of clear, valid pixels over the AOI are skipped."""
    resolution_m: float = 10.0
    """Pixel size of the AOI's UTM grid (m) when sources are not already on one grid."""
    cloud_buffer_px: int = 2
    """Clouds are grown by this many pixels before masking (edges, thin shadows)."""
    scene_folder: str = ""
    """Local scene folder (relative to sample_data) indexed by file name or STAC items, used
    by ``--source local`` when an AOI lists no ``inputs.scenes``."""
    sh_collection: str = "sentinel-2-l2a"
    """Sentinel Hub collection: ``sentinel-2-l2a`` (SCL masks) or ``sentinel-2-l1c``."""
    sh_max_px: int = 2500
    """Largest Process API request edge (px); bigger AOIs are split with sentinelhub's BBoxSplitter."""
    sh_timeout_s: float = 120.0
    """Per-request timeout (s)."""
    sh_max_attempts: int = 4
    """Attempts per request on 5xx, timeouts and connection errors (sentinelhub's retry)."""
    sh_retry_sleep_s: float = 5.0
    """First wait between attempts (s); sentinelhub multiplies it by 3 each time."""
    sh_max_rate_retries: int = 10
    """Give up after this many 429 answers for one request (each waits Retry-After)."""
    sh_threads: int = 4
    """Parallel Process API downloads."""


@dataclass(frozen=True, kw_only=True)
class DetectParams:
    """Thresholds of the index-based detector and vectorisation."""

    ndvi_forest_min: float = 0.6
    """NDVI at or above which a pixel counts as forest / dense vegetation."""
    bare_ndvi_max: float = 0.3
    """NDVI at or below which a non-water pixel counts as bare or disturbed ground."""
    bare_bsi_min: float = -0.05
    """Bare Soil Index at or above which a low-NDVI pixel counts as bare ground."""
    water_mndwi_min: float = 0.0
    """MNDWI above which a pixel counts as open water."""
    turbid_fnu_min: float = 20.0
    """Turbidity (FNU) above which a water pixel counts as turbid."""
    min_area_ha: float = 0.5
    """Minimum mapping unit: polygons smaller than this are dropped (ha)."""
    chunk_px: int = 512
    """Dask chunk edge in pixels (rounded to the raster's block size by the loader)."""
    model_path: str = ""
    """Pixel classifier written by ``asm-monitor train`` (.skops); empty = index rules."""
    model_sha256: str = ""
    """If set, refuse any model whose SHA-256 differs (pin the model you validated)."""
    turbidity_calibration: str = ""
    """Calibration JSON from ``asm-monitor calibrate-turbidity``; empty = the shipped one.
    Used for ``median_turbidity_cal_fnu`` evidence; the turbid/clear split uses Dogliotti."""
    change_baseline_steps: int = 1
    """Dates at the start of a series that form the forest baseline of change detection."""
    change_confirm_after: int = 1
    """Later valid observations repeating a change before it is ``confirmed``."""
    cleanup_radius_px: int = 1
    """Morphological opening/closing radius applied to candidate masks (px; 0 = none)."""


@dataclass(frozen=True, kw_only=True)
class ComplyParams:
    """Thresholds of the compliance rules (see pipeline.comply.rules)."""

    near_site_m: float = 500.0
    """Mining outside a licensed title but within this distance of it is
    ``clearing_outside_licence``; farther away it is ``unregistered_mining`` (m)."""
    min_flag_area_ha: float = 0.1
    """Pieces of detections smaller than this do not raise a flag on their own (ha)."""
    footprint_cell_deg: float = 0.01
    """Grid cell (degrees, ~1.1 km at the equator) that groups unregistered mining and
    protected-area detections into one stable flag across nights."""
    turbidity_ratio: float = 2.0
    """turbidity_downstream fires when downstream median FNU >= ratio x upstream..."""
    turbidity_floor_fnu: float = 50.0
    """... and downstream median FNU >= this floor (FNU)."""
    worsening_growth_pct: float = 20.0
    """A flag whose cumulative footprint grows by more than this percentage over the previous
    period is worsening; the same growth over the footprint at suppression time lifts an
    analyst's suppression (%)."""
    resolve_after_periods: int = 2
    """A flag not seen for this many periods in a row is resolved (periods as run: years,
    quarters...)."""


@dataclass(frozen=True, kw_only=True)
class AlertParams:
    """Alert channels. Secrets (webhook signing secret, SMTP password) come only from the
    environment: ASM_WEBHOOK_SECRET, ASM_SMTP_PASSWORD."""

    min_severity: str = "medium"
    """Flags below this severity raise no alert: info, low, medium, high."""
    base_url: str = ""
    """Public URL where the output folder is served (``https://host/asm``); map links in
    alerts are made absolute with it, else they stay relative to the output folder."""
    deliver_on_run: bool = True
    """Deliver to subscriptions at the end of each AOI's run (else only `asm-monitor alerts`)."""
    max_attempts: int = 4
    """Webhook / SMTP attempts per alert in one delivery pass; what still fails stays
    pending and is retried by the next pass (exactly once overall)."""
    backoff_s: float = 1.0
    """First retry delay (s); it doubles after each failed attempt ..."""
    backoff_max_s: float = 30.0
    """... up to this many seconds."""
    timeout_s: float = 10.0
    """HTTP / SMTP timeout per attempt (s)."""
    smtp_host: str = ""
    """SMTP server for e-mail subscriptions."""
    smtp_port: int = 587
    smtp_starttls: bool = True
    """Upgrade the SMTP connection with STARTTLS before logging in."""
    smtp_user: str = ""
    """SMTP login (password only from ASM_SMTP_PASSWORD); empty = no login."""
    smtp_from: str = "asm-monitor@localhost"
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    """One table per NGO (``[[alerts.subscriptions]]``): ``name``; ``webhook_url`` (signing
    secret from env ``secret_env``, default ASM_WEBHOOK_SECRET) and/or ``email`` (list);
    ``aois`` and ``rules`` (lists, default all); ``min_severity``; ``lang`` (en, es, pt,
    fr); ``digest`` (true = one e-mail per AOI and pass instead of one per alert)."""


@dataclass(frozen=True, kw_only=True)
class RunParams:
    """How a run executes."""

    scheduler: str = "local"
    """``local`` (a LocalCluster sized to the machine), ``threads``, ``synchronous``, or a
    scheduler address ``tcp://HOST:PORT``."""
    workers: int = 0
    """LocalCluster worker processes; 0 = one per core."""
    threads_per_worker: int = 1
    """Threads per LocalCluster worker process."""
    memory_limit: str = "auto"
    """Memory limit per LocalCluster worker, e.g. ``4GiB``; ``auto`` splits the machine's RAM."""
    dashboard_address: str = ":8787"
    """Where a LocalCluster serves the Dask dashboard (needs bokeh); the link is logged."""
    connect_timeout_s: float = 30.0
    """How long to wait for a remote scheduler (``tcp://``) before giving up (s)."""
    lock_wait_s: float = 0.0
    """How long a run waits for another run's lock before exiting with code 3 (s)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a run needs to know, resolved from all sources."""

    sample_data: Path = DEFAULT_SAMPLE_DATA
    """Folder of the real sample data (``ASM_SAMPLE_DATA``)."""
    aoi_dir: Path = Path("aoi")
    """Folder of AOI definitions (``*.geojson``)."""
    out_dir: Path = Path("out")
    """Where run outputs go, one folder per AOI."""
    max_aoi_km2: float = 200_000.0
    """AOIs larger than this are refused (km^2); raise it deliberately for big territories."""
    lang: str = "en"
    """Language of maps and alerts: en, es, pt, fr."""
    state_db: Path | None = None
    """SQLite file of the run ledger, the flag audit ledger and alert delivery state;
    default ``<out_dir>/asm-monitor.sqlite``."""
    ingest: IngestParams = field(default_factory=IngestParams)
    detect: DetectParams = field(default_factory=DetectParams)
    comply: ComplyParams = field(default_factory=ComplyParams)
    alerts: AlertParams = field(default_factory=AlertParams)
    run: RunParams = field(default_factory=RunParams)

    @property
    def state_path(self) -> Path:
        """The SQLite state file (``state_db`` or ``<out_dir>/asm-monitor.sqlite``)."""
        return self.state_db if self.state_db is not None else self.out_dir / "asm-monitor.sqlite"

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with ``overrides`` (same shape as the TOML file) applied on top."""
        return _build(Settings, _merge(dataclasses.asdict(self), overrides), where="override")


T = TypeVar("T")


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _unknown_key(key: str, valid: list[str], where: str) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return ConfigError(f"Unknown setting '{key}' in {where}.{hint} Valid keys: {', '.join(sorted(valid))}.")


def _coerce(value: Any, typ: Any, *, name: str, where: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(typ, str):  # postponed annotations
        typ = {"float": float, "int": int, "str": str, "bool": bool, "Path": Path}.get(typ, typ)
    if dataclasses.is_dataclass(typ) and isinstance(typ, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"Setting '{name}' in {where} must be a table, got {value!r}.")
        return _build(typ, value, where=f"{where} [{name}]")
    try:
        if typ is bool:
            if isinstance(value, str):
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            return bool(value)
        if typ is Path:
            return Path(value)
        if typ in (int, float, str):
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return typ(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"Setting '{name}' in {where} must be {getattr(typ, '__name__', typ)}, "
            f"got {value!r}. Fix the value."
        ) from exc
    return value


def _build(cls: type[T], values: Mapping[str, Any], *, where: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise _unknown_key(key, list(fields), where)
        typ = hints[key]
        optional = False
        if isinstance(typ, types.UnionType):
            optional = type(None) in typing.get_args(typ)
            typ = next(a for a in typing.get_args(typ) if a is not type(None))
        kwargs[key] = _coerce(value, typ, name=key, where=where, optional=optional)
    return cls(**kwargs)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    sections = {f.name for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(hints[f.name])}
    top = {f.name for f in dataclasses.fields(Settings)} - sections
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if "__" in key:
            section, sub = key.split("__", 1)
            if section not in sections:
                raise _unknown_key(section, sorted(sections), f"environment variable {name}")
            out.setdefault(section, {})[sub] = value
        elif key in top:
            out[key] = value
        # Other ASM_* variables (secrets, ASM_CONFIG) belong to other readers.
    return out


def settings_or_default(settings: Settings | None) -> Settings:
    """``settings``, or when None those of :func:`load_settings` (environment and
    ``ASM_CONFIG``): what every analyst function that takes ``settings=None`` uses."""
    return settings if settings is not None else load_settings()


def load_settings(
    path: Path | None = None,
    *,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings with precedence CLI > environment > file > defaults.

    Parameters
    ----------
    path
        TOML config file; ``None`` uses ``ASM_CONFIG`` if set, else no file.
    cli
        Overrides from the command line, shaped like the TOML file.
    environ
        Environment to read ``ASM_*`` variables from (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    if path is None and env.get("ASM_CONFIG"):
        path = Path(env["ASM_CONFIG"])
    merged: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Pass an existing --config file.")
        try:
            merged = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {path} is not valid TOML: {exc}. Fix the syntax.") from exc
        where = f"config file {path}"
    settings = _build(Settings, merged, where=where)
    settings = _build(
        Settings,
        _merge(dataclasses.asdict(settings), _env_overrides(env)),
        where="environment",
    )
    if cli:
        settings = _build(
            Settings,
            _merge(dataclasses.asdict(settings), {k: v for k, v in cli.items() if v is not None}),
            where="command line",
        )
    return settings
