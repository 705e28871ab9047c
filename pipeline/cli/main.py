"""``asm-monitor``: the command line. ``main() -> int`` returns the exit code.

Exit codes: 0 ok; 1 some AOIs failed (the others were still done); 2 usage or
configuration error; 3 another run holds the lock.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pkgutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.cli.args import settings_from_args as settings_from_args
from pipeline.core.errors import PipelineError
from pipeline.core.logcontext import current as log_context_fields
from pipeline.core.version import __version__

log = logging.getLogger("pipeline")
#: Modules of this package that hold no subcommand.
_NOT_COMMANDS = frozenset({"main", "args"})


def command_modules() -> list[str]:
    """Subcommand modules of ``pipeline/cli``; each adds subcommands with ``register(subparsers)``."""
    folder = Path(__file__).parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(folder)])
        if not m.name.startswith("_") and m.name not in _NOT_COMMANDS
    )


_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the run
    context (``run_id``, ``aoi_id``) and any ``extra=`` fields; ``exc`` holds a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **log_context_fields(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure_logging(verbosity: int, *, fmt: str = "text") -> None:
    """Configure logging once: -q warnings only, default info, -v debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    text.converter = time.gmtime  # UTC, like the JSON lines and the run ledger
    handler.setFormatter(_JsonFormatter() if fmt == "json" else text)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # third-party chatter stays at warning unless -v -v
    for noisy in (
        "distributed",
        "rasterio",
        "fiona",
        "pyogrio",
        "urllib3",
        "sentinelhub",
        "requests_oauthlib",
        "oauthlib",
    ):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="asm-monitor",
        description=(
            "Watch protected areas for artisanal gold mining from Sentinel-2 imagery and "
            "external alerts; join detections to the mine-site registry; write compliance "
            "flags, maps and NGO alerts."
        ),
        epilog="exit codes: 0 ok; 1 some AOIs failed (the others were still done); 2 usage or "
        "configuration error; 3 another run holds the lock; 130 interrupted. Logs go to stderr "
        "(--log-format json: one JSON object per line). The options above may also follow the "
        "subcommand: asm-monitor run --all --log-format json.",
    )
    parser.add_argument("--version", action="version", version=f"asm-monitor {__version__}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(f"pipeline.cli.{name}").register(sub)
    for child in _subparsers(parser):
        add_global_options(child, after_command=True)
    return parser


def add_global_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """``-v``, ``-q``, ``--log-format``, ``--config``, ``--sample-data``, ``--aoi-dir``.

    On the top-level parser they come before the subcommand; ``after_command`` adds them to
    a subcommand as well (``asm-monitor run --all --log-format json``) without defaults, so
    a value given before the subcommand is kept unless repeated after it.
    """
    group: argparse.ArgumentParser | argparse._ArgumentGroup = parser
    if after_command:
        group = parser.add_argument_group("global options (also accepted before the subcommand)")

    def add(*flags: str, default: object = None, **kwargs: Any) -> None:
        if any(f in parser._option_string_actions for f in flags):
            return  # the subcommand has an option of that name: its own meaning wins
        group.add_argument(*flags, default=argparse.SUPPRESS if after_command else default, **kwargs)

    add("-v", "--verbose", action="count", default=0, help="more log output (-vv for libraries)")
    add("-q", "--quiet", action="store_true", default=False, help="warnings and errors only")
    add("--log-format", choices=["text", "json"], default="text", help="log line format")
    add("--config", type=Path, help="TOML config file (default: $ASM_CONFIG)")
    add(
        "--sample-data",
        type=Path,
        help="folder of the real sample data (default ../shared/data, $ASM_SAMPLE_DATA)",
    )
    add("--aoi-dir", type=Path, help="folder of AOI definitions (default aoi/)")


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand parser below ``parser`` (``run``, ``flags``, ``flags list``...)."""
    out: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                out += [child, *_subparsers(child)]
    return out


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
    except BrokenPipeError:
        # stdout closed early (`asm-monitor runs list | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
