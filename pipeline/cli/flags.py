"""``asm-monitor flags list | history | suppress | unsuppress``: analyst work on flags."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from pipeline.cli.args import settings_from_args
from pipeline.comply.flag_state import FlagState
from pipeline.state.audit import StateStore


def state_path(args: argparse.Namespace) -> Path:
    """The state file: ``--state-db``, else ``<--out or out_dir>/asm-monitor.sqlite``."""

    if getattr(args, "state_db", None):
        return Path(args.state_db)
    return settings_from_args(args).state_path


def open_store(args: argparse.Namespace) -> StateStore:
    path = state_path(args)
    if not path.is_file():
        from pipeline.core.errors import DataNotFoundError

        raise DataNotFoundError(
            f"No state file at {path}. Pass the --out folder of a run or --state-db FILE."
        )
    return StateStore(path)


def _last_seen(state: FlagState) -> str:
    """The date the flag's evidence was last seen (its last row's ``last_seen``); the period
    label only for states stored without one."""
    when = state.attrs.get("last_seen")
    return str(when)[:10] if when else state.last_seen_period


def _list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        states = store.latest_states(args.aoi)
    w = sys.stdout.write
    shown = 0
    for s in sorted(states.values(), key=lambda s: (s.aoi_id, s.rule_id, s.flag_id)):
        if args.status and s.status not in args.status:
            continue
        shown += 1
        w(
            f"{s.flag_id}  {s.aoi_id:<12} {s.rule_id:<31} {s.status:<10} {s.area_ha:>10.2f} ha  "
            f"site={s.site_id or '-'}  since={s.status_since}  last_seen={_last_seen(s)}\n"
        )
    w(f"{shown} flags\n")
    return 0


def _history(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        history = store.flag_history(args.flag_id)
        events = [r for r in store.ledger_rows() if r["flag_id"] == args.flag_id]
    if not history and not events:
        sys.stdout.write(f"no flag {args.flag_id}\n")
        return 1
    for period, status, ha in history:
        sys.stdout.write(f"{period:<10} {status:<10} {ha:>10.2f} ha\n")
    sys.stdout.write("ledger:\n")
    for r in events:
        sys.stdout.write(
            f"  #{r['seq']} {r['recorded_at']} {r['event']} {r['old_status']} -> {r['new_status']}: "
            f"{r['detail']}\n"
        )
    return 0


def _suppress(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        sup = store.suppress(args.flag_id, reason=args.reason, analyst=args.analyst or getpass.getuser())
    sys.stdout.write(
        f"suppressed {sup.flag_id} at {sup.area_ha:.2f} ha; it comes back as 'worsening' when its "
        "footprint grows past the worsening threshold\n"
    )
    return 0


def _unsuppress(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.unsuppress(args.flag_id, analyst=args.analyst or getpass.getuser())
    sys.stdout.write(f"unsuppressed {args.flag_id}; the next run reports it again\n")
    return 0


def add_state_options(p: argparse.ArgumentParser) -> None:
    """``--out`` (run output folder) and ``--state-db`` (the SQLite file itself)."""
    p.add_argument("--out", type=Path, help="output folder of the runs (its asm-monitor.sqlite is used)")
    p.add_argument("--state-db", type=Path, help="the SQLite state file itself")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``flags`` command group."""
    p = sub.add_parser("flags", help="list, trace and suppress flags", description="Analyst work on flags.")
    s = p.add_subparsers(dest="flags_command", metavar="ACTION", required=True)
    ls = s.add_parser("list", help="flags after the latest period of each AOI")
    ls.add_argument("--aoi", help="only this AOI")
    ls.add_argument("--status", action="append", help="only this status (repeatable)")
    add_state_options(ls)
    ls.set_defaults(func=_list)
    hi = s.add_parser("history", help="a flag's status per period and its ledger events")
    hi.add_argument("flag_id")
    add_state_options(hi)
    hi.set_defaults(func=_history)
    su = s.add_parser(
        "suppress",
        help="mark a flag a false positive",
        description="Mark a flag a false positive. It stays 'suppressed' until its footprint grows "
        "by more than comply.worsening_growth_pct, then comes back as 'worsening'. Written to the ledger.",
    )
    su.add_argument("flag_id")
    su.add_argument("--reason", required=True, help="why the flag is not mining (kept in the ledger)")
    su.add_argument("--analyst", help="who decided (default: the login name)")
    add_state_options(su)
    su.set_defaults(func=_suppress)
    un = s.add_parser("unsuppress", help="withdraw a suppression")
    un.add_argument("flag_id")
    un.add_argument("--analyst", help="who decided (default: the login name)")
    add_state_options(un)
    un.set_defaults(func=_unsuppress)
