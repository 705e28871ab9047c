"""``asm-monitor ledger verify | show``: the hash-chained audit ledger of flag changes."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli.flags import add_state_options, open_store


def _verify(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rows, head, problems = store.verify_ledger()
    w = sys.stdout.write
    if problems:
        for p in problems:
            w(f"BROKEN row {p.seq}: {p.message}\n")
        w(f"ledger {store.path}: {rows} rows, {len(problems)} problem(s); the chain is NOT intact\n")
        return 1
    w(f"ledger {store.path}: {rows} rows, hash chain intact\nhead: {head}\n")
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rows = store.ledger_rows()
    for r in rows[-args.last :] if args.last else rows:
        sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ledger`` command group."""
    p = sub.add_parser(
        "ledger", help="verify or show the flag audit ledger", description="The hash-chained audit ledger."
    )
    s = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    v = s.add_parser(
        "verify",
        help="check the hash chain; exit 1 naming each edited or deleted row",
        description="Recompute every row's SHA-256 chain. Exit 0 when intact, 1 naming every edited, "
        "deleted or reordered row. Prints the head hash: publish it to anchor the ledger.",
    )
    add_state_options(v)
    v.set_defaults(func=_verify)
    sh = s.add_parser("show", help="print ledger rows as JSON lines")
    sh.add_argument("--last", type=int, default=0, help="only the last N rows")
    add_state_options(sh)
    sh.set_defaults(func=_show)
