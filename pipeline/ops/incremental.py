"""What a run has to do for each AOI: inputs, fingerprints and nightly incremental selection.

Nightly incremental (``asm-monitor run`` without ``--period``), per AOI:

1. the AOI never finished a run -> everything available is processed (period ``all``);
2. every input (scene, external detections, registry) has a fingerprint that a
   successful run of the AOI already processed -> the AOI is ``up_to_date``: nothing is
   read, no output is rewritten, no alert is queued;
3. otherwise only the scenes not processed yet are ingested (all of them when only a
   vector input changed, because the flags must then be re-evaluated), over the period
   from the earliest of the last successful run's date, the oldest new scene's acquisition
   date and the oldest external detection to today.

External detections and the registry are small vector files and are always read whole, and
an incremental period reaches back to the oldest external detection: a source published
months late (an Amazon Mining Watch quarter dated 2025-09-30 arriving in November) is read
whole, with what came before it, so a night evaluates the same detections a ``--full`` run
of the same inputs does and nothing seen earlier is dropped. Where that night sits in each
flag's lifecycle is decided by the evidence dates, not by the period
(:mod:`pipeline.state.flag_steps`).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipeline.comply.evidence import as_date
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.ingest.paths import resolve_input
from pipeline.ingest.sources import RemoteScene, remote_listing
from pipeline.ingest.vectors import external_detection_dates


def fingerprint(path: Path) -> str:
    """SHA-256 of the file's bytes (hex), what ``sha256sum`` prints, so an auditor can check
    any input the ledger and ``run.json`` list (streamed; about a second per GB).

    Ledgers written by earlier builds hold a cheaper head-and-tail digest: after the upgrade every
    input looks new once and each AOI is recomputed on the first night."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:  # a basin night hashes the shared AMW files once, not per AOI
        with open(path, "rb") as fh:
            _DIGESTS[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _DIGESTS[key]


#: SHA-256 of the files hashed in this process, by (path, size, mtime): a changed file has
#: a new key.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def input_key(path: Path, *, root: Path) -> str:
    """How an input is named in run.json and the ledger: relative to the data folder."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def input_files(aoi: Aoi, *, root: Path) -> list[Path]:
    """Every file the AOI's run reads: its scenes, external detections and registry."""
    files = [resolve_input(str(s["path"]), root=root) for s in aoi.inputs.get("scenes", [])]
    for key in ("detections", "registry", "rivers"):
        if key in aoi.inputs:
            files += [Path(p) for p in sorted(glob.glob(str(root / aoi.inputs[key]["path"])))]
    return files


def input_fingerprints(aoi: Aoi, *, root: Path, remote: list[RemoteScene] | None = None) -> dict[str, str]:
    """Input key -> :func:`fingerprint` for every file the AOI's run reads, and for each scene
    a remote source lists (``stac:<item id>``: a digest of the item, see
    :func:`pipeline.ingest.sources.remote_listing`; ``remote`` when already listed)."""
    listed = remote_listing(aoi) if remote is None else remote
    files = {input_key(p, root=root): fingerprint(p) for p in input_files(aoi, root=root)}
    return files | {r.key: r.fingerprint for r in listed}


@dataclass(frozen=True)
class AoiPlan:
    """What the run will do with one AOI."""

    aoi: Aoi
    """The AOI to run; for an incremental run its ``inputs.scenes`` holds only new scenes."""
    period: Period | None
    """Period to process (None = everything available)."""
    action: str
    """``run`` or ``up_to_date``."""
    reason: str
    """One line for the log and ``--dry-run``."""
    new_inputs: tuple[str, ...] = ()
    """Input keys not processed before (incremental runs)."""


def _scene_date(entry: Mapping[str, Any]) -> date | None:
    when = entry.get("datetime")
    return datetime.fromisoformat(str(when)).date() if when else None


def external_dates(aoi: Aoi, *, root: Path) -> list[date]:
    """The ``first_seen`` / ``last_seen`` dates of the AOI's external detections (every
    file, every row: they are small vector files)."""
    spec = aoi.inputs.get("detections")
    if not spec:
        return []
    found = (
        as_date(v) for v in external_detection_dates(root / spec["path"], fmt=spec.get("format", "native"))
    )
    return [d for d in found if d is not None]


def plan_aoi(
    aoi: Aoi,
    *,
    root: Path,
    period: Period | None,
    incremental: bool,
    processed: Mapping[str, set[str]],
    last_success: str | None,
    today: date,
) -> AoiPlan:
    """Decide what to process for ``aoi``.

    Parameters
    ----------
    aoi
        The AOI as loaded.
    root
        Data folder the AOI's input paths are relative to.
    period
        Explicit ``--period``; when given (or ``incremental`` is False) everything in it is run.
    incremental
        Nightly mode: only inputs the ledger has not seen.
    processed
        Input key -> fingerprints already processed by successful runs of this AOI.
    last_success
        ISO time the AOI's last successful run finished (None: never).
    today
        The run's date (UTC): end of an incremental period.
    """
    if not incremental or period is not None:
        return AoiPlan(aoi=aoi, period=period, action="run", reason=f"period {period or 'all'}")
    if last_success is None or not processed:
        return AoiPlan(aoi=aoi, period=None, action="run", reason="first run: everything available")
    remote = remote_listing(aoi)  # a remote source's scenes are known only by asking it
    current = input_fingerprints(aoi, root=root, remote=remote)
    new = tuple(sorted(k for k, fp in current.items() if fp not in processed.get(k, set())))
    if not new:
        return AoiPlan(aoi=aoi, period=None, action="up_to_date", reason=f"no new input since {last_success}")
    scenes = list(aoi.inputs.get("scenes", []))
    new_scenes = [s for s in scenes if input_key(resolve_input(str(s["path"]), root=root), root=root) in new]
    # only vector inputs changed: the flags need every scene again
    chosen = new_scenes or scenes
    start = datetime.fromisoformat(last_success).date()
    dated = [d for d in (_scene_date(s) for s in chosen) if d is not None]
    dated += external_dates(aoi, root=root)  # late sources are read whole, not cut at last night
    dated += [r.day for r in remote if r.key in new]  # the run reads every older scene too
    start = min([start, *dated])
    end = max([today, *dated])
    span = Period(start, end, f"{start.isoformat()}/{end.isoformat()}")
    narrowed = dataclasses.replace(aoi, inputs={**aoi.inputs, "scenes": chosen}) if scenes else aoi
    what = f"{len(new_scenes)} new scenes" if new_scenes else "changed vector inputs, all scenes"
    return AoiPlan(
        aoi=narrowed,
        period=span,
        action="run",
        reason=f"incremental: {what} ({', '.join(new)}), period {span}",
        new_inputs=new,
    )
