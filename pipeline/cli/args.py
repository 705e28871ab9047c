"""Settings from parsed command-line arguments, shared by every subcommand."""

from __future__ import annotations

import argparse

from pipeline.core.config import Settings, load_settings


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Resolve settings: CLI flags > ``ASM_*`` environment > ``--config`` file > defaults."""
    cli: dict[str, object] = {}
    if getattr(args, "sample_data", None):
        cli["sample_data"] = args.sample_data
    if getattr(args, "aoi_dir", None):
        cli["aoi_dir"] = args.aoi_dir
    if getattr(args, "out", None):
        cli["out_dir"] = args.out
    if getattr(args, "lang", None):
        cli["lang"] = args.lang
    if getattr(args, "state_db", None):
        cli["state_db"] = args.state_db
    run = {
        k: getattr(args, k)
        for k in ("scheduler", "workers", "threads_per_worker", "memory_limit", "lock_wait_s")
        if getattr(args, k, None) is not None
    }
    if run:
        cli["run"] = run
    return load_settings(args.config, cli=cli)
