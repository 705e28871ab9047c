"""``asm-monitor map --run OUT_DIR/AOI_ID --lang es``: re-render a run's map."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.args import settings_from_args
from pipeline.core.config_checks import LANGUAGES


def _map(args: argparse.Namespace) -> int:
    from pipeline.ops.rerender import find_run_dir, rerender_map, rerender_scorecards
    from pipeline.report.index import write_index

    settings = settings_from_args(args)
    run_dir = find_run_dir(args.run, out_dir=settings.out_dir)
    path = rerender_map(run_dir, lang=settings.lang, target=args.output, settings=settings)
    sys.stdout.write(f"{path}\n")
    if args.output is None:
        # in place: the scorecards the map links to follow the map's language
        index = rerender_scorecards(run_dir, lang=settings.lang)
        if index is not None:
            sys.stdout.write(f"{index}\n")
        if (run_dir.parent / "index.json").is_file():
            # the output folder's index page the map links back to, in the same language
            sys.stdout.write(f"{write_index(run_dir.parent, lang=settings.lang)}\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``map``."""
    p = sub.add_parser(
        "map",
        help="re-render an AOI's map from a run's outputs",
        description="Render map.html again from the flags, detections and sites a run wrote, e.g. in "
        "another language; without --output the site scorecards are rendered again in that language "
        "too. Needs no network; the page embeds Leaflet and only fetches basemap tiles.",
    )
    p.add_argument("--run", required=True, help="run folder OUT_DIR/AOI_ID, or a run id (with --out)")
    p.add_argument("--out", type=Path, help="output folder to look a run id up in (default: settings)")
    p.add_argument("--lang", choices=LANGUAGES, help="language of the map")
    p.add_argument("--output", type=Path, help="write here instead of the run's map.html")
    p.set_defaults(func=_map)
