"""An AOI's outputs swapped in with one atomic rename, and its alert outbox kept outside them.

Layout under the output folder ``OUT``::

    OUT/<aoi>                    symlink -> .<aoi>/<version>: what every reader opens
    OUT/.<aoi>/<version>/        one run's outputs, written whole before the link moves
    OUT/.<aoi>/<version>/alerts  symlink -> ../alerts
    OUT/.<aoi>/alerts/outbox/    the alert queue, shared by every version

A run writes its outputs into a new version folder, then points ``OUT/<aoi>`` at it by
renaming a new symlink over the old one (``rename(2)`` replaces it atomically): a reader, or a
crash at any instant, sees the whole previous run or the whole new one, never a gap. Paths
through ``OUT/<aoi>/...`` (``map --run``, ``open_run``, the outbox delivery reads) work as
before. Alerts are never inside a folder that is swapped or removed: the outbox lives beside
the versions, and before any folder is removed the alerts it holds (layouts of earlier
versions, where the outbox sat in the swapped folder) are moved into the outbox.

Only the run holding the run lock writes here. The first run on an output folder written by
an earlier version converts it once (its plain ``OUT/<aoi>`` folder becomes a version); that
conversion is the only moment ``OUT/<aoi>`` is briefly absent.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

VERSION_PREFIX = "v-"


def aoi_home(out_dir: Path, aoi_id: str) -> Path:
    """``OUT/.<aoi>``: the AOI's versions and its outbox."""
    return out_dir / f".{aoi_id}"


def outbox_dir(out_dir: Path, aoi_id: str) -> Path:
    """``OUT/.<aoi>/alerts/outbox``, also reached as ``OUT/<aoi>/alerts/outbox``."""
    return aoi_home(out_dir, aoi_id) / "alerts" / "outbox"


def current_version(out_dir: Path, aoi_id: str) -> str | None:
    """Name of the version folder ``OUT/<aoi>`` points at (None: no link yet)."""
    target = out_dir / aoi_id
    return Path(os.readlink(target)).name if target.is_symlink() else None


def _rescue_alerts(alerts: Path, outbox: Path) -> int:
    """Move the alerts of a real ``alerts/outbox`` folder (not the link) into ``outbox``; an
    alert already there stays as it is. Returns how many moved."""
    if alerts.is_symlink() or not (alerts / "outbox").is_dir():
        return 0
    moved = 0
    for alert in sorted((alerts / "outbox").glob("*.json")):
        if not (outbox / alert.name).exists():
            os.replace(alert, outbox / alert.name)
            moved += 1
    if moved:
        log.warning("%d queued alerts moved from %s into the outbox %s", moved, alerts, outbox)
    return moved


def _discard(folder: Path, outbox: Path) -> None:
    """Remove an outputs folder no reader is sent to, after saving the alerts it holds."""
    _rescue_alerts(folder / "alerts", outbox)
    shutil.rmtree(folder)


def _point(out_dir: Path, aoi_id: str, version: Path) -> None:
    """Point ``OUT/<aoi>`` at ``version`` with one rename of a new symlink over the old one."""
    link = out_dir / f".{aoi_id}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(f"{version.parent.name}/{version.name}", link)
    os.replace(link, out_dir / aoi_id)


def _adopt(folder: Path, out_dir: Path, aoi_id: str) -> None:
    """Make a plain outputs folder of an earlier version (``OUT/<aoi>`` or the ``.old-*`` a
    killed two-rename swap left) the current version, its alerts moved to the outbox."""
    outbox = outbox_dir(out_dir, aoi_id)
    alerts = folder / "alerts"
    _rescue_alerts(alerts, outbox)
    if alerts.is_symlink():
        os.unlink(alerts)
    elif alerts.exists():
        shutil.rmtree(alerts)  # what is left are copies of alerts already in the outbox
    version = aoi_home(out_dir, aoi_id) / f"{VERSION_PREFIX}adopted-{uuid.uuid4().hex[:6]}"
    os.replace(folder, version)
    os.symlink("../alerts", version / "alerts")
    _point(out_dir, aoi_id, version)
    log.info("outputs %s converted to versioned folders (%s)", out_dir / aoi_id, version.name)


def _convert_earlier_layout(out_dir: Path, aoi_id: str) -> None:
    """Folders written by earlier versions: a plain ``OUT/<aoi>``, and the ``.<aoi>.old-*`` /
    ``.<aoi>.staging-*`` a killed swap left. No alert in them is lost."""
    target = out_dir / aoi_id
    outbox = outbox_dir(out_dir, aoi_id)
    for old in sorted(out_dir.glob(f".{aoi_id}.old-*")):
        if not target.exists() and not target.is_symlink():
            _adopt(old, out_dir, aoi_id)  # killed between the renames: the last whole outputs
        else:
            _discard(old, outbox)
    for leftover in sorted(out_dir.glob(f".{aoi_id}.staging-*")):
        _discard(leftover, outbox)
    if target.is_dir() and not target.is_symlink():
        _adopt(target, out_dir, aoi_id)


def staging_dir(out_dir: Path, aoi_id: str, run_id: str) -> Path:
    """A fresh version folder for this run's outputs, under ``OUT/.<aoi>``.

    First the AOI's folder is made safe to swap: alerts stranded by earlier layouts moved to
    the outbox, versions no reader is sent to any more removed (crashed runs' included).
    """
    home = aoi_home(out_dir, aoi_id)
    os.makedirs(outbox_dir(out_dir, aoi_id), exist_ok=True)
    _convert_earlier_layout(out_dir, aoi_id)
    keep = current_version(out_dir, aoi_id)
    for old in sorted(home.iterdir()):
        if old.name.startswith(VERSION_PREFIX) and old.name != keep:
            _discard(old, outbox_dir(out_dir, aoi_id))
    for link in sorted(out_dir.glob(f".{aoi_id}.link-*")):
        os.unlink(link)
    stage = home / f"{VERSION_PREFIX}{run_id}-{uuid.uuid4().hex[:6]}"
    os.mkdir(stage)
    os.symlink("../alerts", stage / "alerts")
    return stage


def swap_into_place(stage: Path, target: Path) -> None:
    """Make the whole version ``stage`` what ``target`` (``OUT/<aoi>``) shows, in one atomic
    rename. The version it replaces stays until the next run, for readers still in it."""
    out_dir, aoi_id = target.parent, target.name
    previous = current_version(out_dir, aoi_id)
    _point(out_dir, aoi_id, stage)
    for old in sorted(aoi_home(out_dir, aoi_id).iterdir()):
        if old.name.startswith(VERSION_PREFIX) and old.name not in (stage.name, previous):
            _discard(old, outbox_dir(out_dir, aoi_id))
