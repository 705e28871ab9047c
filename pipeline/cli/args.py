"""Settings from parsed command-line arguments, shared by every subcommand."""

from __future__ import annotations

import argparse

from pipeline.core.config import Settings, load_settings
from pipeline.report.subscriptions import parse_subscriptions


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Resolve settings: CLI flags > ``ASM_*`` environment > ``--config`` file > defaults,
    checked (types, ranges, vocabularies, alert subscriptions): ConfigError, exit 2."""
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
    settings = load_settings(args.config, cli=cli)
    # subscriptions are checked now too, so a bad one stops the command before anything runs
    parse_subscriptions(settings.alerts.subscriptions, default_min_severity=settings.alerts.min_severity)
    return settings
