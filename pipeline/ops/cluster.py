"""The run's Dask scheduler, the GDAL environment on every worker, and memory accounting.

Workers of a real cluster (``--scheduler tcp://HOST:PORT``) open the scene files
themselves, by path: scenes must live on storage every worker sees at the same path (a
shared mount) or at a URL GDAL can read (``/vsis3/``, ``/vsicurl/``). :func:`check_worker_paths`
says so up front instead of failing deep inside a task.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
import psutil
from distributed.diagnostics.plugin import WorkerPlugin

from pipeline.core.config import RunParams
from pipeline.core.errors import DataNotFoundError

log = logging.getLogger(__name__)

#: GDAL settings every worker gets unless its environment already sets them: no directory
#: listing on open (a COG is one file), a bounded block cache per worker process, retries
#: for object stores.
GDAL_ENV: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": "256",
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_NUM_THREADS": "1",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2,.vrt",
    "VSI_CACHE": "TRUE",
}

_LOCAL = {"threads", "synchronous", "processes"}


def apply_gdal_env(env: Mapping[str, str] = GDAL_ENV) -> dict[str, str]:
    """Set ``env`` in this process's environment where not already set; return the result."""
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return {k: os.environ[k] for k in env}


class GdalEnv(WorkerPlugin):
    """Sets the GDAL environment in each worker process (also on workers that join later)."""

    name = "asm-monitor-gdal-env"

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)

    def setup(self, worker: Any) -> None:
        """Called by each worker when the plugin is registered or the worker starts."""
        apply_gdal_env(self.values)


def dashboard_available() -> bool:
    """The Dask dashboard needs bokeh; without it the cluster runs with no dashboard."""
    return importlib.util.find_spec("bokeh") is not None


@contextlib.contextmanager
def dask_client(params: RunParams) -> Iterator[Any]:
    """The run's Dask scheduler: a LocalCluster sized to the machine, a remote scheduler
    (``tcp://HOST:PORT``), or in-process threads. Yields the ``distributed.Client`` (None
    for the in-process schedulers); it is the default scheduler inside the block."""
    apply_gdal_env()
    if params.scheduler in _LOCAL:
        with dask.config.set(scheduler=params.scheduler):
            log.info("Dask scheduler: in-process %s", params.scheduler)
            yield None
        return
    from distributed import Client, LocalCluster

    if params.scheduler == "local":
        workers = params.workers or os.cpu_count() or 1
        dashboard = params.dashboard_address if dashboard_available() else None
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=params.threads_per_worker,
                memory_limit=params.memory_limit,
                dashboard_address=dashboard,
                processes=True,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.register_plugin(GdalEnv(GDAL_ENV))
            log.info(
                "Dask LocalCluster: %d workers x %d threads, memory limit %s per worker",
                workers,
                params.threads_per_worker,
                params.memory_limit,
            )
            _log_dashboard(client)
            yield client
        return
    if not params.scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")):
        from pipeline.core.errors import ConfigError

        raise ConfigError(
            f"Unknown scheduler {params.scheduler!r}. Use 'local', 'threads', 'synchronous', "
            "'processes' or a scheduler address such as tcp://10.0.0.5:8786."
        )
    try:
        client = Client(params.scheduler, timeout=params.connect_timeout_s)
    except (OSError, TimeoutError) as exc:
        from pipeline.core.errors import ConfigError

        raise ConfigError(
            f"Cannot reach the Dask scheduler at {params.scheduler} ({exc}). Start it "
            "(`dask scheduler`) or fix --scheduler."
        ) from exc
    with client:
        client.register_plugin(GdalEnv(GDAL_ENV))
        n = len(client.scheduler_info().get("workers", {}))
        log.info("Dask scheduler %s: %d workers connected", params.scheduler, n)
        if n == 0:
            log.warning("Dask scheduler %s has no workers yet: tasks wait until one joins", params.scheduler)
        _log_dashboard(client)
        yield client


def _log_dashboard(client: Any) -> None:
    if not dashboard_available():
        log.info("Dask dashboard not available: install bokeh>=3.1 (pip install 'bokeh>=3.1') to get it")
        return
    link = client.dashboard_link
    log.info("Dask dashboard: %s", link)


def is_remote(client: Any) -> bool:
    """True when ``client`` talks to a cluster this process did not start."""
    return client is not None and getattr(client, "cluster", None) is None


def check_worker_paths(client: Any, paths: Sequence[Path]) -> None:
    """Raise when a worker of a remote cluster cannot see a local input file.

    Raises
    ------
    DataNotFoundError
        Naming the worker and the file, with the fix (shared storage at the same path).
    """
    local = [str(p) for p in paths if "://" not in str(p) and not str(p).startswith("/vsi")]
    if not local or not is_remote(client):
        return

    def _missing(files: list[str]) -> list[str]:
        return [f for f in files if not os.path.exists(f)]

    for worker, missing in client.run(_missing, local).items():
        if missing:
            raise DataNotFoundError(
                f"Dask worker {worker} cannot see {missing[0]} ({len(missing)} input files missing). "
                "Workers read scenes themselves: put them on storage mounted at the same path on "
                "every worker, or use object-store URLs (s3://, /vsis3/)."
            )


class PeakMemory:
    """Peak resident memory (MiB) of this process plus its child processes (LocalCluster
    workers), sampled every ``interval_s`` seconds in a background thread."""

    def __init__(self, *, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="asm-peak-memory", daemon=True)
        self._proc = psutil.Process()

    def sample(self) -> int:
        """Current RSS of the process tree (bytes); updates the peak."""
        total = 0
        try:
            total = self._proc.memory_info().rss
            for child in self._proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        except psutil.Error:
            pass
        self._peak = max(self._peak, total)
        return total

    def reset(self) -> None:
        """Start a new peak from the current usage (per AOI)."""
        self._peak = 0
        self.sample()

    @property
    def peak_mib(self) -> float:
        """The peak since start or the last :meth:`reset` (MiB)."""
        self.sample()
        return round(self._peak / 2**20, 1)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
