"""Settings: defaults < TOML file < environment (``ASM_*``) < command line.

A config file looks like::

    sample_data = "../shared/data"
    aoi_dir = "aoi"

    [detect]
    min_area_ha = 0.5

    [comply]
    near_site_m = 500

Environment variables name a top-level key as ``ASM_<KEY>`` (``ASM_SAMPLE_DATA``) and a
section key as ``ASM_<SECTION>__<KEY>`` (``ASM_DETECT__MIN_AREA_HA``). Unknown keys and
unknown ``ASM_*`` variables are an error that names the nearest valid one, so a typo never
silently falls back to a default. Types, ranges, finiteness and vocabularies (languages,
severities, schedulers) are checked at load (:mod:`pipeline.core.config_checks`): a bad value
stops the command with exit code 2 before anything runs or is saved.
Secrets (Sentinel Hub, webhook, SMTP) are never read from the file: see :class:`Secret`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.config_build import ENV_PREFIX as ENV_PREFIX
from pipeline.core.config_build import build, env_overrides, merge
from pipeline.core.config_checks import check_settings
from pipeline.core.errors import ConfigError

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
    """Default scene source: ``local``, ``sentinelhub`` or ``stac`` (an AOI's own
    ``inputs.source`` wins; see :mod:`pipeline.ingest.sources`)."""
    stac_url: str = ""
    """STAC API searched when the source is ``stac`` (e.g. ``https://earth-search.aws.element84.com/v1``)."""
    stac_collections: str = "sentinel-2-l2a"
    """Comma-separated collection ids searched in ``stac_url`` (``ASM_INGEST__STAC_COLLECTIONS``)."""
    allow_absolute_paths: bool = False
    """Let AOI files read inputs outside the sample-data folder (absolute paths, ``..``,
    symlinks leading out, AOI files linked into ``aoi_dir`` from elsewhere). Off: every input
    path must stay inside ``sample_data``."""
    cache_dir: Path = Path(".asm-cache")
    """Download cache (Sentinel Hub responses keyed by request fingerprint)."""
    sh_base_url: str = "https://services.sentinel-hub.com"
    """Sentinel Hub API base URL (tests point it at a local server)."""
    sh_token_url: str = "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
    """OAuth token endpoint. Credentials come only from ASM_SH_CLIENT_ID / ASM_SH_CLIENT_SECRET."""
    min_valid_fraction: float = 0.1
    """Scenes with a smaller fraction of clear, valid pixels over the AOI are skipped."""
    max_cloud_cover: float = 80.0
    """Remote sources (STAC, Sentinel Hub) are searched for scenes whose ``eo:cloud_cover``
    (% of the whole product, as the catalogue lists it) is at most this; 100 = no filter."""
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
    """Dates at the start of a series that form the forest baseline of change detection
    (gold-change: clear observations per pixel whose median is the stored *before* view; a
    stored baseline of another number is refused until ``run --full`` rebuilds it)."""
    change_confirm_after: int = 1
    """Later valid observations repeating a change before it is ``confirmed``."""
    cleanup_radius_px: int = 1
    """Morphological opening/closing radius applied to candidate masks (px; 0 = none)."""
    detector: str = "gold-change"
    """Mining detector of imagery AOIs: ``gold-change`` (the trained before/after window
    detector, :mod:`pipeline.detect.mining_change`) or ``index-rules`` (the documented
    index-threshold baseline: bare ground by NDVI/BSI, change of classes over dates)."""
    mining_model_path: str = ""
    """Gold-mining detector written by ``asm-monitor train --dataset gold_mining_patches``;
    empty = the default model in the cache (trained from the sample data when missing)."""
    mining_model_sha256: str = ""
    """If set, refuse any gold-mining detector whose SHA-256 differs."""


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
    """Deliver to subscriptions when a run ends: `asm-monitor run` delivers every AOI's pending
    alerts once at the end of the night, after releasing the run lock (else only `asm-monitor alerts`)."""
    max_attempts: int = 4
    """Webhook / SMTP attempts per alert in one delivery pass; what still fails stays
    pending and is retried by the next pass (exactly once overall)."""
    backoff_s: float = 1.0
    """First retry delay (s); it doubles after each failed attempt ..."""
    backoff_max_s: float = 30.0
    """... up to this many seconds."""
    timeout_s: float = 10.0
    """HTTP / SMTP timeout per attempt (s)."""
    max_age_days: int = 90
    """Backlog limit (days): an alert whose incident was last seen more than this before the
    newest evidence of the run that queued it (a first run, a backfill) is not sent on its own;
    each subscription gets that backlog as one digest per channel and pass (one webhook request
    with the list, one e-mail). 0 = no limit: every alert is sent as it comes."""
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
    """``local`` (a LocalCluster sized to the machine), ``threads``, ``synchronous``,
    ``processes`` (Dask's in-process schedulers), or a scheduler address ``tcp://HOST:PORT``."""
    workers: int = 0
    """LocalCluster worker processes (>= 1); 0 = one per core."""
    threads_per_worker: int = 1
    """Threads per LocalCluster worker process."""
    memory_limit: str = "auto"
    """Memory limit per LocalCluster worker, e.g. ``4GiB`` (at least 256 MiB); ``auto`` splits
    the machine's RAM."""
    dashboard_address: str = ":8787"
    """Where a LocalCluster serves the Dask dashboard (needs bokeh); the link is logged."""
    connect_timeout_s: float = 30.0
    """How long to wait for a remote scheduler (``tcp://``) before giving up (s)."""
    lock_wait_s: float = 0.0
    """How long a run waits for another run's lock before exiting with code 3 (s)."""
    aoi_batch: int = 8
    """AOIs without imagery per task on the LocalCluster's workers (AOI-level parallelism,
    issue 19); 0 = every AOI in the main process, one after the other."""


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
    max_aoi_file_mb: float = 20.0
    """AOI files larger than this are refused (MB): simplify the outline or reference a
    boundary file in the sample data instead of drawing it in the AOI file."""
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
        """Return a copy with ``overrides`` (same shape as the TOML file) applied on top,
        checked like a loaded config."""
        settings = build(Settings, merge(dataclasses.asdict(self), overrides), where="override")
        check_settings(settings)
        return settings


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

    Raises
    ------
    ConfigError
        Unknown key or ``ASM_*`` variable, wrong type, or a value out of range (exit code 2).
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
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Config file {path} is not UTF-8 text ({exc}). Save it as UTF-8.") from exc
        where = f"config file {path}"
    settings = build(Settings, merged, where=where)
    secret_vars = [
        str(sub["secret_env"])
        for sub in settings.alerts.subscriptions
        if isinstance(sub, Mapping) and sub.get("secret_env")
    ]
    overrides = env_overrides(env, Settings, secret_vars=secret_vars)
    settings = build(Settings, merge(dataclasses.asdict(settings), overrides), where="environment")
    if cli:
        settings = build(
            Settings,
            merge(dataclasses.asdict(settings), {k: v for k, v in cli.items() if v is not None}),
            where="command line",
        )
    check_settings(settings)
    return settings
