"""The lblab command line: list, run, report, compare, doctor, clean, up.

Every error a user can cause prints one line naming the fix and exits 2; claims that do not
hold exit 1; an internal failure exits 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import experiments
from lblab.errors import LabInterrupted, LblabError, UsageError

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def cmd_list(args: argparse.Namespace) -> int:
    from lblab.params import describe

    if args.params:
        mod = experiments.load(args.params)
        table = Table("parameter", "type", "default", "quick", "meaning", title=mod.TITLE)
        quick = vars(mod.quick())
        for name, kind, default, help_text in describe(mod.Params()):
            table.add_row(name, kind, default, str(quick[name]), help_text)
        out.print(table)
        return 0
    table = Table("experiment", "what it shows", "needs")
    for name in experiments.names():
        mod = experiments.load(name)
        table.add_row(name, mod.SUMMARY, ", ".join(mod.NEEDS))
    out.print(table)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from lblab import runner
    from lblab.report import report

    started = time.monotonic()

    def progress(name: str, rep: int, message: str) -> None:
        tag = f"{name}" + (f" #{rep + 1}" if args.repeat > 1 else "")
        console.log(f"[bold]{tag}[/bold] {message}  [dim]({time.monotonic() - started:.0f} s)")

    code = runner.run(args.names, args.set or [], quick=args.quick, seed=args.seed,
                      out=args.out, repeat=args.repeat, lab=args.lab, progress=progress)
    page = report(args.out)
    _print_claims(args.out)
    out.print(f"report: {page}")
    return code


def _print_claims(root: Path) -> None:
    from lblab.report import fmt
    from lblab.results import experiment_folders, load_result

    table = Table("experiment", "claim", "predicted", "measured", "tolerance", "verdict")
    for column in table.columns[:2]:
        column.overflow = "fold"
    for folder in experiment_folders(root):
        result = load_result(folder)
        if not result:
            table.add_row(folder.name, "-", "", "", "", "[yellow]incomplete[/yellow]")
            continue
        for c in result["claims"]:
            verdict = "[green]holds[/green]" if c["holds"] else "[red]does not hold[/red]"
            table.add_row(folder.name, c["id"], fmt(c["predicted"]), fmt(c["measured"]),
                          c["tolerance"], verdict)
    out.print(table)


def cmd_report(args: argparse.Namespace) -> int:
    from lblab.report import report

    page = report(args.dir)
    _print_claims(args.dir)
    out.print(f"report: {page}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from lblab.report import compare

    for d in (args.a, args.b):
        if not d.is_dir():
            raise UsageError(f"{d} is not a results folder")
    dest = args.out or Path(f"compare-{args.a.name}-vs-{args.b.name}")
    out.print(f"compare: {compare(args.a, args.b, dest)}")
    return 0


def cmd_doctor(_args: argparse.Namespace) -> int:
    from lblab.capabilities import detect

    caps = detect()
    table = Table("capability", "state")
    essential = ["root", "ovs_running"]
    for key, value in caps.to_json().items():
        if key == "tools":
            continue
        table.add_row(key, str(value))
    for tool, version in caps.tools.items():
        table.add_row(f"tool {tool}", version or "[red]missing[/red]")
        if tool in ("ovs-vsctl", "mn", "nft", "haproxy"):
            essential.append(tool)
    out.print(table)
    missing = [e for e in essential if not caps.has(e)]
    if missing:
        console.print(f"lblab: missing {', '.join(missing)}: run scripts/provision.sh as root")
        return 2
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from lblab import owned

    labs = [o for o in owned.existing_labs() if not args.names or o.lab in args.names]
    unknown = set(args.names) - {o.lab for o in labs}
    if unknown:
        raise UsageError(f"no lab named {sorted(unknown)[0]!r} has a state file; "
                         "`lblab clean` with no name cleans every crashed lab")
    code = 0
    for o in labs:
        if o.owner_alive():
            console.print(f"lab {o.lab}: still running (pid {o.owner_pid}); left alone")
            continue
        found = owned.leftovers(o)
        problems = owned.remove(o)
        for item in found:
            out.print(f"lab {o.lab}: removed {item}")
        for p in problems:
            console.print(f"lab {o.lab}: [red]{p}[/red]")
            code = 3
        if not problems:
            out.print(f"lab {o.lab}: clean")
    if not labs:
        out.print("no lab state files: nothing to clean")
    return code


def cmd_up(args: argparse.Namespace) -> int:
    from mininet.cli import CLI

    from lbnodes.smoke import smoke_lab

    with smoke_lab(args.lab) as smoke:
        out.print(f"smoke lab up: L4 VIP {smoke.l4_url}  L7 VIP {smoke.l7_url}  "
                  f"controller API http://127.0.0.1:{smoke.lab.controller_api}/state")
        out.print("try: c1 curl -s -D- -o /dev/null " + smoke.l7_url)
        CLI(smoke.lab.net)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lblab", description="Reproduce L4/L7 load-balancer "
                                "failure modes on real software, and measure them.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="the experiments, or one experiment's parameters")
    s.add_argument("--params", metavar="NAME", help="show NAME's parameters")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("run", help="run experiments and write results, plots and a report")
    s.add_argument("names", nargs="+", metavar="NAME", help="experiment names, or all")
    s.add_argument("--quick", action="store_true", help="small parameters: under a minute each")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a parameter (repeatable); NAME.KEY=VALUE for one experiment")
    s.add_argument("--seed", type=int, default=1, help="seed for every random choice")
    s.add_argument("--repeat", type=int, default=1, help="run each experiment N times")
    s.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    s.add_argument("--lab", default="lblab", help="lab name (resources are labelled with it)")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("report", help="write DIR/report.html from a results folder")
    s.add_argument("dir", type=Path)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("compare", help="draw two results folders side by side")
    s.add_argument("a", type=Path)
    s.add_argument("b", type=Path)
    s.add_argument("--out", type=Path, help="where to write (default compare-A-vs-B)")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("doctor", help="what this machine offers")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("clean", help="remove what crashed labs left behind (from state files)")
    s.add_argument("names", nargs="*", metavar="LAB")
    s.set_defaults(func=cmd_clean)

    s = sub.add_parser("up", help="bring up the smoke lab and open the Mininet CLI")
    s.add_argument("--lab", default="up", help="lab name")
    s.set_defaults(func=cmd_up)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LabInterrupted as exc:
        console.print(f"lblab: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("lblab: interrupted")
        return 130
    except LblabError as exc:
        console.print(f"lblab: error: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
