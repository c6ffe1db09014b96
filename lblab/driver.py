"""The experiment driver: the run skeleton every experiment shares.

An experiment declares *what* it measures; the driver owns *how a run goes*:

    class MyExperiment(Experiment):
        name, title, summary, needs, Params          what it is, its typed parameters
        quick(self)                                   small parameters (under a minute); often
                                                      quick = staticmethod(params.quick)
        variants(self, p) -> [VariantPlan]            names, declared seconds, which lab
        lab(self, p, key) -> LabPlan                  topology, controller, roles
        setup(self, lab, p, rep) -> env               once per lab: backends, LB nodes
        prepare(self, env, p, v)                      configure the lab as variant v has it
        measure(self, env, p, v, run)                 drive load and faults, write raw data
        analyse(self, p, raw) -> Analysis             pure: raw data -> metrics, series
        claims(self, p, analysis) -> [Claim]          pure: predictions from p vs metrics
        plot(self, folder, result) -> [Path]          pure: figures from the folder alone

One repetition, as data: for each lab (variants sharing a lab key share one bring-up), the
lab comes up, `setup` runs once, then each variant is prepared and measured into
`raw/<variant>/`. Then the raw data is read back from the folder (never from memory),
analysed, turned into claims, and written to result.json (schema `SCHEMA`) with the
derived series beside it; plots are drawn from the folder. With `repeat` > 1 each repetition
gets its own folder (`rep-K/`) and the experiment's result.json aggregates the claims by id
(lblab.claims.aggregate): a claim holds only if it held in every repetition.

`measure` talks to the lab through `VariantRun`: `run.client(...)` runs the open-loop client
into the variant's raw folder, `run.timeline()` schedules faults on the client's measured
clock (lblab.timeline), `run.sample(...)` records timestamped counters on that clock, and
`run.write_table` / `run.write_doc` keep anything else. Nothing about time is assumed.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lblab import claims as C
from lblab import raw as rawio
from lblab.errors import LabError, UsageError
from lblab.lab import ControllerSpec, Lab
from lblab.plots import topology_of
from lblab.results import RunFolder, load_result, provenance, write_json
from lblab.sampler import Sampler, cpu_busy_ticks
from lblab.timeline import Timeline

SCHEMA = 2
"""result.json layout version: 2 adds plan, summary, timeline problems, per-id aggregation."""
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:+=-]*")


@dataclass(frozen=True)
class VariantPlan:
    """One variant of a run, as planned."""

    name: str
    seconds: float
    """Declared duration of its measurement: the ETA, the dry-run estimate."""
    lab: str = "main"
    """Variants with the same key share one lab (brought up once, in plan order)."""
    setting: Any = None
    """What the experiment needs to know about the variant (a policy, a utilization...)."""

    def to_json(self) -> dict:
        return {"name": self.name, "seconds": self.seconds, "lab": self.lab,
                "setting": self.setting}


@dataclass(frozen=True)
class LabPlan:
    topo: Any
    controller: ControllerSpec | None = None
    roles: dict[str, str] = field(default_factory=dict)
    """Node-name prefix -> role, for the topology drawing."""
    link_class: Any = None


@dataclass
class Analysis:
    """What `analyse` returns: metrics per variant, derived series, cross-variant numbers."""

    variants: dict[str, dict[str, Any]]
    series: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Derived tables, written as `<name>.csv` beside result.json (plots read them)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """Numbers that are not one variant's: pooled estimates, what plots draw as bounds."""


class Experiment:
    """Base class of every experiment; see the module docstring for the contract."""

    name: str = ""
    title: str = ""
    summary: str = ""
    needs: tuple[str, ...] = ("root", "ovs_running")
    Params: type = object
    bring_up_s: float = 6.0
    """Estimate of one lab's bring-up and setup, for the ETA and the dry-run."""

    def quick(self) -> Any:
        return self.Params()

    def variants(self, p: Any) -> list[VariantPlan]:
        raise NotImplementedError

    def lab(self, p: Any, key: str) -> LabPlan:
        raise NotImplementedError

    def setup(self, lab: Lab, p: Any, rep: Repetition) -> Any:
        return lab

    def prepare(self, env: Any, p: Any, v: VariantPlan) -> None:
        """Configure the lab as variant v has it (also what `lblab up --variant` shows)."""

    def measure(self, env: Any, p: Any, v: VariantPlan, run: VariantRun) -> None:
        raise NotImplementedError

    def analyse(self, p: Any, raw: rawio.Raw) -> Analysis:
        raise NotImplementedError

    def claims(self, p: Any, a: Analysis) -> list[C.Claim]:
        raise NotImplementedError

    def notes(self, p: Any, a: Analysis) -> list[str]:
        return []

    def plot(self, folder: Path, result: dict) -> list[Path]:
        return []


# -- what measure talks to ----------------------------------------------------------------
@dataclass
class Repetition:
    """One repetition of one experiment: its folder, seed and how to report progress."""

    exp: Experiment
    params: Any
    folder: Path
    seed: int
    lab_name: str
    progress: Progress
    sysctls: list[dict[str, str]] = field(default_factory=list)

    def snapshot(self, name: str, data: Any) -> None:
        """A lab-level document (counter snapshots, kernel object sizes): raw/_lab/NAME.json."""
        write_json(self.folder / rawio.RAW / rawio.LAB_DOCS / f"{name}.json", data)


class VariantRun:
    """A variant's measurement: its raw folder, its clock, its client and samplers."""

    def __init__(self, rep: Repetition, lab: Lab, plan: VariantPlan) -> None:
        self.rep, self.lab, self.plan = rep, lab, plan
        self.dir = rawio.variant_dir(rep.folder, plan.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._timeline: Timeline | None = None
        self._started = False
        self._clock_lock = threading.Lock()
        """Clients may run from several threads (one per user host): one starts the clock."""
        self._samplers: list[tuple[str, Sampler]] = []

    @property
    def seed(self) -> int:
        return self.rep.seed

    def step(self, message: str) -> None:
        self.rep.progress.step(message)

    def timeline(self, start_timeout_s: float = 30.0) -> Timeline:
        """The variant's clock; schedule faults on it before starting the client."""
        if self._timeline is None:
            self._timeline = Timeline(self.lab.file(f"{self.plan.name}.start"),
                                      start_timeout_s)
        return self._timeline

    def start_clock(self) -> Timeline:
        """Start the variant's clock for a workload that is not the open-loop client: t = 0
        is whatever it announces with `timeline.announce(wall)`."""
        tl = self.timeline()
        with self._clock_lock:
            if not self._started:
                tl.start()
                self._started = True
        return tl

    def client(self, node: str, cfg: Any, tag: str = "client") -> dict:
        """Run the open-loop client in `node` to completion, its records into the table
        `TAG-records` and its summary into the document `TAG-summary`; returns the summary.
        The first client of a variant with a timeline starts that timeline's clock."""
        from lblab.workloads.handles import run_client

        with self._clock_lock:
            if self._timeline is not None and not self._started:
                cfg.start_file = str(self._timeline.start_file)
                self._timeline.start()
                self._started = True
        _, summary = run_client(self.lab, node, cfg, self.dir, tag, read=False)
        return summary

    @contextlib.contextmanager
    def sample(self, probe: Callable[[], dict], interval_s: float,
               table: str = "samples") -> Iterator[Sampler]:
        """Sample `probe()` every interval into the table `table`, on the variant's clock."""
        sampler = Sampler(probe, interval_s)
        with sampler:
            yield sampler
        self._samplers.append((table, sampler))

    def write_table(self, name: str, rows: list[dict]) -> None:
        rawio.write_table(self.dir / f"{name}.csv", rows)

    def write_doc(self, name: str, data: Any) -> None:
        write_json(self.dir / f"{name}.json", data)

    def finish(self) -> list[str]:
        """Write the timeline and the samples on its clock; return the timeline's problems."""
        problems: list[str] = []
        origin = None
        if self._timeline is not None:
            doc = self._timeline.close()
            self.write_doc("timeline", doc)
            problems = doc["problems"]
            origin = doc["origin_wall"]
        for table, sampler in self._samplers:
            base = origin if origin is not None else sampler.wall0
            rows = [{"t": round(r["wall"] - base, 3), **{k: v for k, v in r.items()
                                                        if k not in ("t", "wall")}}
                    for r in sampler.rows]
            self.write_table(table, rows)
            if sampler.errors:
                problems.append(f"sampler {table}: {len(sampler.errors)} probe errors, "
                                f"first: {sampler.errors[0]}")
        return problems


# -- progress -----------------------------------------------------------------------------
class Progress:
    """What the driver tells the user; the CLI shows it with rich, tests ignore it."""

    def experiment(self, name: str, rep: int, repeat: int, plans: list[VariantPlan],
                   seconds: float) -> None: ...

    def variant(self, plan: VariantPlan) -> None: ...

    def step(self, message: str) -> None: ...

    def advance(self, seconds: float) -> None: ...

    def done(self) -> None: ...

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        yield


# -- planning -----------------------------------------------------------------------------
def plan_variants(exp: Experiment, p: Any, only: list[str] | None = None) -> list[VariantPlan]:
    plans = exp.variants(p)
    for v in plans:
        if not VARIANT_NAME.fullmatch(v.name):
            raise LabError(f"{exp.name}: variant name {v.name!r} is not usable as a folder name")
    if len({v.name for v in plans}) != len(plans):
        raise LabError(f"{exp.name}: two variants share a name")
    if only:
        known = [v.name for v in plans]
        unknown = [o for o in only if o not in known]
        if unknown:
            raise UsageError(f"--only {unknown[0]}: {exp.name} has no such variant "
                             f"(its variants: {', '.join(known)})")
        plans = [v for v in plans if v.name in only]
    return plans


def estimate_s(exp: Experiment, plans: list[VariantPlan]) -> float:
    labs = len(dict.fromkeys(v.lab for v in plans))
    return sum(v.seconds for v in plans) + labs * exp.bring_up_s


def lab_groups(plans: list[VariantPlan]) -> list[tuple[str, list[VariantPlan]]]:
    groups: dict[str, list[VariantPlan]] = {}
    for v in plans:
        groups.setdefault(v.lab, []).append(v)
    return list(groups.items())


# -- one repetition -----------------------------------------------------------------------
@dataclass
class WallTime:
    """Where a repetition's wall time goes, so a slow experiment says what it spends it on
    (result.json `timing`; the report and bench/suite_time.py show it)."""

    bring_up_s: float = 0.0
    """Lab bring-up: namespaces, links, switches, the controller (every lab of the run)."""
    setup_s: float = 0.0
    """The experiment's setup: backends, LB nodes, stores started and ready."""
    prepare_s: float = 0.0
    measure_s: dict[str, float] = field(default_factory=dict)
    """Per variant: its measurement, warm-up included, as measure spends it."""
    teardown_s: float = 0.0
    conclude_s: float = 0.0
    """Reading the raw data back, analysis, claims and result.json (plots come after)."""

    def to_json(self, total_s: float) -> dict:
        return {"total_s": round(total_s, 1), "bring_up_s": round(self.bring_up_s, 1),
                "setup_s": round(self.setup_s, 1), "prepare_s": round(self.prepare_s, 1),
                "measure_s": {k: round(v, 1) for k, v in self.measure_s.items()},
                "teardown_s": round(self.teardown_s, 1), "conclude_s": round(self.conclude_s, 1)}


@contextlib.contextmanager
def _timed(add: Callable[[float], None]) -> Iterator[None]:
    t0 = time.monotonic()
    try:
        yield
    finally:
        add(time.monotonic() - t0)


@dataclass
class RunOptions:
    seed: int = 1
    repeat: int = 1
    lab_name: str = "lblab"
    only: list[str] | None = None
    keep_lab_on_failure: bool = False
    progress: Progress = field(default_factory=Progress)
    caps: Any = None


def run_repetition(rep: Repetition, plans: list[VariantPlan], opts: RunOptions) -> dict:
    """Measure every variant of one repetition and write its result.json; return it."""
    exp, p = rep.exp, rep.params
    started = time.monotonic()
    busy0, total0 = cpu_busy_ticks()
    problems: dict[str, list[str]] = {}
    topology: dict = {}
    groups = lab_groups(plans)
    result: dict | None = None
    wall = WallTime()
    for i, (key, group) in enumerate(groups):
        spec = exp.lab(p, key)
        topology = topology or topology_of(spec.topo, spec.roles)
        rep.progress.step(f"bringing up the lab for {', '.join(v.name for v in group)}")
        lab_cm = Lab(rep.lab_name, spec.topo, controller=spec.controller, caps=opts.caps,
                     log_dir=rep.folder / "logs", link_class=spec.link_class)
        t_up = time.monotonic()
        with lab_cm as lab:
            wall.bring_up_s += time.monotonic() - t_up
            with _timed(lambda s: setattr(wall, "setup_s", wall.setup_s + s)):
                env = exp.setup(lab, p, rep)
            for v in group:
                rep.progress.variant(v)
                with _timed(lambda s: setattr(wall, "prepare_s", wall.prepare_s + s)):
                    exp.prepare(env, p, v)
                run = VariantRun(rep, lab, v)
                t0 = time.monotonic()
                try:
                    exp.measure(env, p, v, run)
                finally:
                    # Also when measure raised: stop the clock before the lab goes, so no
                    # fault fires into a lab being torn down.
                    found = run.finish()
                    wall.measure_s[v.name] = time.monotonic() - t0
                if found:
                    problems[v.name] = found
                rep.progress.advance(v.seconds)
                rep.progress.step(f"{v.name}: measured in {wall.measure_s[v.name]:.0f} s")
            rep.sysctls += lab.sysctls_changed
            errors = lab.controller_errors if spec.controller is not None else ""
            if errors:
                problems.setdefault("controller", []).append(
                    f"controller exception log not empty: {errors.strip().splitlines()[-1]}")
            if i == len(groups) - 1:
                busy1, total1 = cpu_busy_ticks()
                t_c = time.monotonic()
                result = _conclude(rep, plans, problems, topology,
                                   (busy1 - busy0) / max(1, total1 - total0),
                                   time.monotonic() - started, opts)
                wall.conclude_s = time.monotonic() - t_c
                if opts.keep_lab_on_failure and not run_ok(result):
                    _stop_in_cli(lab, result, rep.progress)
            t_down = time.monotonic()
        wall.teardown_s += time.monotonic() - t_down
    assert result is not None
    # The last lab's teardown comes after result.json was first written (the lab may be
    # kept up for the CLI on failure): write it again with the whole wall time.
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["timing"] = wall.to_json(result["duration_s"])
    RunFolder.finish_at(rep.folder, result)
    draw(exp, rep.folder, result)
    return result


def analyse_folder(exp: Experiment, p: Any, folder: Path,
                   order: list[str]) -> tuple[Analysis, list[C.Claim]]:
    """Read the raw data back from `folder` and analyse it: what a run and a re-analysis do."""
    raw = rawio.load_raw(folder, order)
    analysis = exp.analyse(p, raw)
    return analysis, exp.claims(p, analysis)


def _conclude(rep: Repetition, plans: list[VariantPlan], problems: dict[str, list[str]],
              topology: dict, cpu: float, seconds: float, opts: RunOptions) -> dict:
    exp, p = rep.exp, rep.params
    analysis, claims = analyse_folder(exp, p, rep.folder, [v.name for v in plans])
    for name, rows in analysis.series.items():
        rawio.write_table(rep.folder / f"{name}.csv", rows)
    env = provenance(opts.caps, rep.sysctls, sys.argv)
    env["cpu_busy_mean"] = round(cpu, 3)
    result = {
        "schema": SCHEMA, "experiment": exp.name, "title": exp.title, "summary": exp.summary,
        "params": asdict(p), "seed": rep.seed, "repeat": 1, "environment": env,
        "plan": [v.to_json() for v in plans], "duration_s": round(seconds, 1),
        "variants": analysis.variants, "analysis": analysis.summary,
        "claims": [c.to_json() for c in claims],
        "notes": exp.notes(p, analysis), "topology": topology,
        "measurement_problems": problems,
    }
    RunFolder.finish_at(rep.folder, result)
    return result


def _stop_in_cli(lab: Lab, result: dict, progress: Progress) -> None:
    from mininet.cli import CLI

    failing = [c["id"] for c in result["claims"] if not (c["holds"] or c.get("skipped"))]
    failing += [f"the measurement of {v}" for v in result["measurement_problems"]]
    with progress.paused():
        print(f"lblab: {result['experiment']}: {', '.join(failing)} did not hold; the lab "
              "is kept up in the Mininet CLI (exit to tear it down)", file=sys.stderr)
        CLI(lab.net, stdin=sys.stdin)  # today's stdin, not the one Mininet saw at import


def run_ok(result: dict) -> bool:
    """Every measured claim held and no measurement was invalid."""
    return C.exit_ok(result["claims"]) and not result.get("measurement_problems")


# -- one experiment, all repetitions ------------------------------------------------------
def run_experiment(exp: Experiment, p: Any, out: Path, opts: RunOptions) -> bool:
    """Run `exp` with params `p` into `out/<name>/`; True when every claim held every time."""
    plans = plan_variants(exp, p, opts.only)
    if opts.caps is None:
        from lblab.capabilities import detect

        opts.caps = detect()
    folder = RunFolder(out, exp.name)
    folder.begin()
    total = estimate_s(exp, plans)
    results = []
    for k in range(opts.repeat):
        sub = folder.dir if opts.repeat == 1 else folder.dir / f"rep-{k + 1}"
        sub.mkdir(parents=True, exist_ok=True)
        rep = Repetition(exp, p, sub, opts.seed + k, opts.lab_name, opts.progress)
        opts.progress.experiment(exp.name, k, opts.repeat, plans, total)
        result = run_repetition(rep, plans, opts)
        result["repetition"] = k + 1 if opts.repeat > 1 else None
        if opts.repeat > 1:
            RunFolder.finish_at(sub, result)
        results.append(result)
        opts.progress.done()
    if opts.repeat == 1:
        return run_ok(results[0])
    combined = aggregate_result(exp, p, results)
    folder.finish(combined)
    draw(exp, folder.dir, combined)
    return run_ok(combined)


def aggregate_result(exp: Experiment, p: Any, results: list[dict]) -> dict:
    first = results[0]
    problems = {f"rep-{i + 1}/{k}": v for i, r in enumerate(results)
                for k, v in r.get("measurement_problems", {}).items()}
    env = dict(first["environment"])
    env["cpu_busy_mean"] = round(statistics.fmean(r["environment"]["cpu_busy_mean"]
                                                  for r in results), 3)
    env["sysctls_changed"] = [s for r in results for s in r["environment"]["sysctls_changed"]]
    return {
        "schema": SCHEMA, "experiment": exp.name, "title": exp.title, "summary": exp.summary,
        "params": asdict(p), "seed": first["seed"], "repeat": len(results),
        "environment": env, "plan": first["plan"],
        "duration_s": round(sum(r["duration_s"] for r in results), 1),
        "repetitions": [{"folder": f"rep-{i + 1}", "seed": r["seed"],
                         "claims_holding": sum(c["holds"] for c in r["claims"]),
                         "claims": len(r["claims"]), "ok": run_ok(r)}
                        for i, r in enumerate(results)],
        "variants": {}, "analysis": {},
        "claims": C.aggregate([r["claims"] for r in results]),
        "notes": first["notes"], "topology": first["topology"],
        "measurement_problems": problems,
    }


# -- plots --------------------------------------------------------------------------------
def draw(exp: Experiment, folder: Path, result: dict) -> list[Path]:
    """Every figure of a results folder, from the folder alone."""
    from lblab import plots

    made: list[Path] = []
    try:
        if result.get("repeat", 1) > 1:
            made.append(plots.claims_over_repetitions(result, folder / "claims-repeats.png"))
        else:
            made += exp.plot(folder, result) or []
        topo = plots.draw_topology(result.get("topology", {}), folder / "topology.png")
        if topo:
            made.append(topo)
    except Exception as exc:  # noqa: BLE001 - the data stands; say the plot failed
        print(f"lblab: warning: {exp.name}: plotting failed: {exc!r}", file=sys.stderr)
    return made


def redraw(folder: Path, load: Callable[[str], Experiment]) -> list[Path]:
    """`lblab plot`: redraw the figures of an experiment folder and its repetitions."""
    result = load_result(folder)
    if result is None:
        raise UsageError(f"{folder} has no complete result.json (interrupted run?)")
    if result.get("schema") != SCHEMA:
        raise UsageError(f"{folder}/result.json has schema {result.get('schema')}, this "
                         f"lblab draws schema {SCHEMA}: rerun the experiment")
    exp = load(result["experiment"])
    made = draw(exp, folder, result)
    for sub in sorted(folder.glob("rep-*")):
        sub_result = load_result(sub)
        if sub_result:
            made += draw(exp, sub, sub_result)
    return made
