"""``asm-monitor``: the command line. ``main() -> int`` returns the exit code.

Exit codes: 0 ok; 1 some AOIs failed (the others were still done); 2 usage or
configuration error; 3 another run holds the lock.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline import __version__
from pipeline.config import Settings, load_settings
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")


def command_modules() -> list[str]:
    """Modules under ``pipeline/commands``; each adds subcommands with ``register(subparsers)``."""
    import pipeline.commands

    return sorted(
        m.name for m in pkgutil.iter_modules(pipeline.commands.__path__) if not m.name.startswith("_")
    )


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(verbosity: int, *, fmt: str = "text") -> None:
    """Configure logging once: -q warnings only, default info, -v debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # third-party chatter stays at warning unless -v -v
    for noisy in ("distributed", "rasterio", "fiona", "pyogrio", "urllib3", "sentinelhub"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)


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
    run = {
        k: getattr(args, k)
        for k in ("scheduler", "workers", "threads_per_worker", "memory_limit")
        if getattr(args, k, None) is not None
    }
    if run:
        cli["run"] = run
    return load_settings(args.config, cli=cli)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="asm-monitor",
        description=(
            "Watch protected areas for artisanal gold mining from Sentinel-2 imagery and "
            "external alerts; join detections to the mine-site registry; write compliance "
            "flags, maps and NGO alerts."
        ),
    )
    parser.add_argument("--version", action="version", version=f"asm-monitor {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for libraries)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="log line format")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $ASM_CONFIG)")
    parser.add_argument(
        "--sample-data",
        type=Path,
        help="folder of the real sample data (default ../shared/data, $ASM_SAMPLE_DATA)",
    )
    parser.add_argument("--aoi-dir", type=Path, help="folder of AOI definitions (default aoi/)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(f"pipeline.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asm-monitor`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose, fmt=args.log_format)
    try:
        code: int = args.func(args)
    except PipelineError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
