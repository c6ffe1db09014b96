"""The lblab command line: list, run, sweep, plot, report, compare, doctor, clean, up.

Every error a user can cause prints one line naming the fix and exits 2; claims that do not
hold exit 1; an internal failure exits 3.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lblab import catalogue, driver
from lblab.errors import LabInterrupted, LblabError, UsageError

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def cmd_list(args: argparse.Namespace) -> int:
    from lblab.params import describe

    if args.params:
        exp = catalogue.load(args.params)
        table = Table("parameter", "type", "default", "quick", "meaning", title=exp.title)
        quick = vars(exp.quick())
        for name, kind, default, help_text in describe(exp.Params()):
            table.add_row(name, kind, default, str(quick[name]), help_text)
        out.print(table)
        variants = driver.plan_variants(exp, exp.Params())
        out.print("variants: " + ", ".join(v.name for v in variants))
        return 0
    table = Table("experiment", "what it shows", "variants", "needs")
    for name in catalogue.names():
        exp = catalogue.load(name)
        table.add_row(name, exp.summary, str(len(driver.plan_variants(exp, exp.Params()))),
                      ", ".join(exp.needs))
    out.print(table)
    out.print("`lblab list --params NAME` shows an experiment's parameters and variants")
    return 0


class RichProgress(driver.Progress):
    """Progress on stderr: a bar per experiment (elapsed, and an ETA from the variants'
    declared durations), and a log line per step."""

    def __init__(self, bar=None) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.started = time.monotonic()
        self.shared = bar is not None
        """A sweep's bar: its live display is the sweep's to stop."""
        self.bar = bar or Progress(TextColumn("{task.description}"), BarColumn(),
                                   TimeElapsedColumn(), TextColumn("ETA"),
                                   TimeRemainingColumn(), console=console, transient=True)
        self.task = None
        self.tag = ""

    def experiment(self, name, rep, repeat, plans, seconds):
        self.tag = name + (f" #{rep + 1}/{repeat}" if repeat > 1 else "")
        self.bar.start()
        self.task = self.bar.add_task(self.tag, total=seconds)
        self.step(f"{len(plans)} variants, about {seconds / 60:.1f} min")

    def variant(self, plan):
        self.bar.update(self.task, description=f"{self.tag}: {plan.name}")
        self.step(f"{plan.name} ({plan.seconds:.0f} s declared)")

    def step(self, message):
        console.log(f"[bold]{self.tag}[/bold] {message}  "
                    f"[dim]({time.monotonic() - self.started:.0f} s)")

    def advance(self, seconds):
        self.bar.advance(self.task, seconds)

    def done(self):
        if not self.shared:
            self.bar.stop()
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None

    @contextlib.contextmanager
    def paused(self):
        self.bar.stop()
        try:
            yield
        finally:
            self.bar.start()


class RichSweepProgress:
    """A sweep's progress on stderr: one bar for the whole sweep (points done, running,
    failed, queued; an ETA at the pace measured so far), a log line per finished point, and
    under it the bar of a point run in this process."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Eta(TimeRemainingColumn):
            def render(self, task):
                eta = task.fields.get("eta")
                return Text(eta, style="progress.remaining") if eta else super().render(task)

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                            TextColumn("ETA"), Eta(), console=console, transient=True)
        self.task = None

    def begin(self, tracker) -> None:
        self.bar.start()
        self.task = self.bar.add_task("sweep", total=len(tracker.plan.points))
        plan, kept = tracker.plan, tracker.counts()["kept"]
        todo = sum(p.seconds for p in plan.points if p.name not in tracker.outcomes)
        self.note(f"{plan.experiment}: {len(plan.points)} points"
                  + (f" ({kept} kept)" if kept else "") + f", about {todo / 60:.1f} min of "
                  f"runs to do on {tracker.lanes} lab{'s' if tracker.lanes > 1 else ''}")
        self.update(tracker)

    def update(self, tracker) -> None:
        c = tracker.counts()
        eta = int(tracker.eta_s())
        self.bar.update(self.task, completed=c["done"] + c["failed"] + c["kept"],
                        description=f"sweep {tracker.plan.experiment}: {c['done']} done"
                        + (f" ({c['kept']} kept)" if c["kept"] else "")
                        + f", {c['running']} running, {c['failed']} failed, "
                        f"{c['queued']} queued", eta=f"{eta // 60}:{eta % 60:02d}")

    def note(self, message: str) -> None:
        console.log(f"[bold]sweep[/bold] {message}")

    def run_progress(self) -> RichProgress:
        return RichProgress(bar=self.bar)

    def end(self) -> None:
        self.bar.stop()


def _only(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--only expects VARIANT[,VARIANT...]")
    return names


def _dry_run(args: argparse.Namespace) -> int:
    from lblab import runner

    runner.check_repeat(args.repeat)
    planned = runner.plan(args.names, args.set or [], args.quick, _only(args.only))
    table = Table("experiment", "variants (declared s)", "parameters changed", "about",
                  title="lblab run --dry-run: nothing is created")
    total = 0.0
    for row in runner.describe_plan(planned, args.repeat):
        total += row["seconds"]
        table.add_row(row["experiment"],
                      ", ".join(f"{v.name} ({v.seconds:.0f})" for v in row["variants"]),
                      ", ".join(f"{k}={v}" for k, v in row["changed"].items()) or "-",
                      f"{row['seconds'] / 60:.1f} min")
    out.print(table)
    out.print(f"{len(planned)} experiments x {args.repeat} repetitions, about "
              f"{total / 60:.1f} min; results would go to {args.out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from lblab import runner
    from lblab.report import report

    if args.dry_run:
        return _dry_run(args)
    code = runner.run(args.names, args.set or [], quick=args.quick, seed=args.seed,
                      out=args.out, repeat=args.repeat, lab=args.lab, progress=RichProgress(),
                      only=_only(args.only), keep_lab_on_failure=args.keep_lab_on_failure)
    page = report(args.out)
    _print_claims(args.out)
    out.print(f"report: {page}")
    return code


def cmd_sweep(args: argparse.Namespace) -> int:
    from lblab import runner, sweep
    from lblab.capabilities import detect, require
    from lblab.lab import check_lab_name

    plan = sweep.plan_sweep(args.name, args.grid or [], args.set or [], quick=args.quick,
                            repeat=args.repeat, seed=args.seed)
    check_lab_name(args.lab)
    if args.dry_run:
        table = Table("point", "changed from the sweep's parameters", "about",
                      title="lblab sweep --dry-run: nothing is created")
        for p in plan.points:
            table.add_row(p.name, " ".join(p.sets), f"{p.seconds / 60:.1f} min")
        out.print(table)
        out.print(f"{len(plan.points)} points of {plan.experiment}, about "
                  f"{plan.seconds / 60:.1f} min of runs; results would go to {args.out}")
        return 0
    sweep.check_folders(plan, args.out)
    todo, kept = sweep.pending(plan, args.out, args.resume)
    client = None
    if args.scheduler:
        client = sweep.connect(args.scheduler)
    elif todo:
        runner.check_lab_free(args.lab)
        require(detect(), catalogue.load(plan.experiment).needs, plan.experiment)
    try:
        tracker = sweep.run_sweep(plan, args.out, todo, kept, lab=args.lab,
                                  progress=RichSweepProgress(), client=client,
                                  scheduler=args.scheduler)
    finally:
        if client is not None:
            client.close()
    page = sweep.write_report(args.out)
    table = Table("point", "outcome", "exit", "attempts", "seconds", "where", "note")
    for p in plan.points:
        o = tracker.outcomes.get(p.name)
        if o is None:
            table.add_row(p.name, "[yellow]not run[/yellow]", "", "", "", "", "")
            continue
        colour = "red" if o.status == "failed" else "green" if o.code == 0 else "yellow"
        table.add_row(p.name, f"[{colour}]{o.status}[/{colour}]", str(o.code), str(o.attempts),
                      f"{o.seconds:.0f}", o.where, o.message)
    out.print(table)
    out.print(f"sweep report: {page}")
    return tracker.exit_code()


def _print_claims(root: Path) -> None:
    from lblab.report import fmt, predicted_text, status, verdict
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
            colour = {"skipped": "yellow", "holds": "green", "fails": "red"}[status(c)]
            table.add_row(folder.name, c["id"], predicted_text(c), fmt(c["measured"]),
                          c["tolerance"], f"[{colour}]{verdict(c)}[/{colour}]")
        for variant, problems in (result.get("measurement_problems") or {}).items():
            for problem in problems:
                table.add_row(folder.name, f"measurement: {variant}", "", "", "",
                              f"[red]invalid: {problem}[/red]")
    out.print(table)


def cmd_plot(args: argparse.Namespace) -> int:
    from lblab.results import experiment_folders

    if not args.dir.is_dir():
        raise UsageError(f"{args.dir} is not a results folder (give the --out of `lblab run`)")
    folders = experiment_folders(args.dir)
    if not folders:
        raise UsageError(f"{args.dir} holds no experiment results")
    for folder in folders:
        made = driver.redraw(folder, catalogue.load)
        out.print(f"{folder}: {len(made)} figures")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lblab.report import report

    if args.junit and args.junit.is_dir():
        raise UsageError(f"--junit {args.junit}: is a folder; give a file name")
    page = report(args.dir, redraw=True, junit=args.junit)
    _print_claims(args.dir)
    out.print(f"report: {page}")
    if args.junit:
        out.print(f"junit: {args.junit}")
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

    if args.name:
        return _up_experiment(args)
    if args.variant or args.set:
        raise UsageError("--variant and --set need an experiment: lblab up NAME --variant V")
    with catalogue.load_lab("smoke")(args.lab) as smoke:
        for line in smoke.banner():
            out.print(line)
        CLI(smoke.lab.net)
    return 0


def _up_experiment(args: argparse.Namespace) -> int:
    """Any experiment's lab, configured as one variant has it, in the Mininet CLI."""
    import tempfile

    from mininet.cli import CLI

    from lblab import runner
    from lblab.capabilities import detect, require
    from lblab.lab import Lab, check_lab_name

    check_lab_name(args.lab)
    runner.check_lab_free(args.lab)
    planned = runner.plan([args.name], args.set or [], args.quick)[0]
    if args.variant:
        names = [v.name for v in planned.variants]
        if args.variant not in names:
            raise UsageError(f"--variant {args.variant}: {planned.exp.name} has no such "
                             f"variant (its variants: {', '.join(names)})")
        planned.variants = [v for v in planned.variants if v.name == args.variant]
    require(detect(), planned.exp.needs, planned.exp.name)
    variant = planned.variants[0]
    spec = planned.exp.lab(planned.params, variant.lab)
    folder = Path(tempfile.mkdtemp(prefix=f"lblab-up-{planned.exp.name}-"))
    with Lab(args.lab, spec.topo, controller=spec.controller, log_dir=folder / "logs",
             link_class=spec.link_class) as lab:
        rep = driver.Repetition(planned.exp, planned.params, folder, args.seed, args.lab,
                                RichProgress())
        env = planned.exp.setup(lab, planned.params, rep)
        planned.exp.prepare(env, planned.params, variant)
        out.print(f"{planned.exp.name}: lab up as variant [bold]{variant.name}[/bold] "
                  f"(hosts: {' '.join(h.name for h in lab.net.hosts)}); logs in {folder}")
        if spec.controller is not None:
            out.print(f"controller API: http://127.0.0.1:{lab.controller_api}/state")
        CLI(lab.net)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix (and exit 2), like every
    other error lblab reports."""

    def error(self, message: str) -> None:  # type: ignore[override]
        console.print(f"lblab: error: {message} (see `{self.prog} --help`)", soft_wrap=True)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="lblab", description="Reproduce L4/L7 load-balancer "
                      "failure modes on real software, and measure them.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

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
    s.add_argument("--only", metavar="VARIANT,...", help="run only these variants")
    s.add_argument("--dry-run", action="store_true",
                   help="print the plan (variants, parameters, duration) and create nothing")
    s.add_argument("--keep-lab-on-failure", action="store_true",
                   help="when a claim does not hold, stop in the Mininet CLI with the lab up")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("sweep", help="a grid of parameter points, each a run, here or on Dask")
    s.add_argument("name", metavar="NAME", help="experiment name")
    s.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="a swept parameter and its values (repeatable: the Cartesian grid)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a parameter fixed for every point (repeatable)")
    s.add_argument("--quick", action="store_true", help="start from the quick parameters")
    s.add_argument("--seed", type=int, default=1, help="seed of every point's run")
    s.add_argument("--repeat", type=int, default=1, help="run each point N times")
    s.add_argument("--out", type=Path, default=Path("sweep"),
                   help="sweep folder: DIR/<point>/ per point, DIR/index.html")
    s.add_argument("--lab", default="sweep", help="lab name of every point's run")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="a Dask scheduler (tcp://HOST:PORT): each point a task on a worker "
                   "with the resource lab=1")
    s.add_argument("--resume", action="store_true",
                   help="skip points that already have a complete result.json")
    s.add_argument("--dry-run", action="store_true", help="print the points and create nothing")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("plot", help="redraw every figure of a results folder from the folder")
    s.add_argument("dir", type=Path)
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("report", help="write DIR/report.html from a results folder")
    s.add_argument("dir", type=Path)
    s.add_argument("--junit", type=Path, metavar="FILE",
                   help="also write a JUnit XML file: one test case per claim")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("compare", help="two results folders side by side, as a page")
    s.add_argument("a", type=Path)
    s.add_argument("b", type=Path)
    s.add_argument("--out", type=Path, help="where to write the page and the plots it shows "
                   "(default compare-A-vs-B in the current directory)")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("doctor", help="what this machine offers")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("clean", help="remove what crashed labs left behind (from state files)")
    s.add_argument("names", nargs="*", metavar="LAB")
    s.set_defaults(func=cmd_clean)

    s = sub.add_parser("up", help="an experiment's lab (or the smoke lab) in the Mininet CLI")
    s.add_argument("name", nargs="?", metavar="NAME", help="experiment (default: smoke lab)")
    s.add_argument("--variant", help="configure the lab as this variant has it")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a parameter")
    s.add_argument("--quick", action="store_true", help="the quick parameters")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--lab", default="up", help="lab name")
    s.set_defaults(func=cmd_up)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return args.func(args)
    except LabInterrupted as exc:
        console.print(f"lblab: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("lblab: interrupted")
        return 130
    except LblabError as exc:
        console.print(f"lblab: error: {exc}", soft_wrap=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
