"""`lblab run`: validate everything, then run each experiment into its results folder.

All input is checked first (experiment names, every `--set`, the capabilities each experiment
needs), so bad input exits 2 having created nothing. Each experiment then runs `repeat` times;
its result.json holds the params, the environment, the metrics per variant and the claims
(with mean and spread over repetitions), and its plots are drawn from the folder.
"""

from __future__ import annotations

import statistics
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import experiments
from lblab.capabilities import detect, require
from lblab.claims import Claim
from lblab.errors import LabInterrupted, LblabError, UsageError
from lblab.experiment import Outcome, RunContext
from lblab.params import apply_overrides
from lblab.results import RunFolder, provenance, write_json
from lblab.sampler import cpu_busy_ticks

EXIT_OK, EXIT_CLAIM, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def plan(names: list[str], sets: list[str], quick: bool) -> list[tuple[Any, Any]]:
    """(module, params) per experiment, with every `--set` applied and validated.

    `key=value` applies to every selected experiment that has `key`; `name.key=value` to one.
    """
    single = len(names) == 1 and names != ["all"]
    if names == ["all"]:
        names = experiments.names()
    modules = [experiments.load(n) for n in names]
    used: set[str] = set()
    planned = []
    for mod in modules:
        params = mod.quick() if quick else mod.Params()
        fields = set(asdict(params))
        mine = []
        for item in sets:
            key = item.split("=", 1)[0].strip()
            target, _, bare = key.rpartition(".")
            if target and target != mod.NAME:
                continue
            if target or bare in fields or single:
                mine.append(item.replace(f"{mod.NAME}.", "", 1) if target else item)
                used.add(item)
        planned.append((mod, apply_overrides(mod.NAME, params, mine)))
    unused = [s for s in sets if s not in used]
    if unused:
        raise UsageError(f"--set {unused[0]}: no selected experiment has that parameter")
    return planned


def aggregate(runs: list[list[Claim]]) -> list[dict]:
    """One row per claim: the first run's claim, measured = mean over runs, plus spread."""
    rows = []
    for i, claim in enumerate(runs[0]):
        values = [r[i].measured for r in runs if r[i].measured is not None]
        mean = statistics.fmean(values) if values else None
        merged = Claim(claim.id, claim.statement, claim.predicted, mean, claim.comparison,
                       claim.tolerance, claim.note)
        row = merged.to_json()
        if len(runs) > 1:
            row["runs"] = [r[i].measured for r in runs]
            row["spread"] = statistics.stdev(values) if len(values) > 1 else 0.0
            row["runs_holding"] = sum(r[i].holds for r in runs)
        rows.append(row)
    return rows


def _result(mod: Any, params: Any, seed: int, repeat: int, caps: Any,
            outcomes: list[Outcome], cpu: float) -> dict:
    last = outcomes[-1]
    env = provenance(caps, [c for o in outcomes for c in o.sysctls_changed], sys.argv)
    env["cpu_busy_mean"] = round(cpu, 3)
    return {
        "experiment": mod.NAME, "title": mod.TITLE, "summary": mod.SUMMARY,
        "params": asdict(params), "seed": seed, "repeat": repeat, "environment": env,
        "variants": last.variants if len(outcomes) == 1 else {
            f"rep-{i + 1}": o.variants for i, o in enumerate(outcomes)},
        "claims": aggregate([o.claims for o in outcomes]),
        "notes": last.notes, "topology": last.topology,
    }


def _plot(mod: Any, folder: Path) -> None:
    try:
        mod.plot(folder)
    except Exception as exc:  # noqa: BLE001 - the data stands; say the plot failed
        print(f"lblab: warning: {mod.NAME}: plotting failed: {exc}", file=sys.stderr)


def run_one(mod: Any, params: Any, out: Path, *, seed: int, repeat: int, lab: str,
            caps: Any, progress: Any) -> int:
    """Run one experiment `repeat` times. Each repetition of several gets its own folder with
    its own result.json and plots; the experiment's result.json aggregates the claims."""
    folder = RunFolder(out, mod.NAME)
    folder.begin()
    outcomes: list[Outcome] = []
    cpus: list[float] = []
    for rep in range(repeat):
        sub = folder if repeat == 1 else RunFolder(folder.dir, f"rep-{rep + 1}")
        sub.dir.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(params=params, folder=sub, caps=caps, seed=seed + rep,
                         lab_name=lab, progress=lambda m, r=rep: progress(mod.NAME, r, m))
        busy0, total0 = cpu_busy_ticks()
        outcome = mod.run(ctx)
        busy1, total1 = cpu_busy_ticks()
        cpus.append((busy1 - busy0) / max(1, total1 - total0))
        outcomes.append(outcome)
        if repeat > 1:
            sub.finish(_result(mod, params, seed + rep, 1, caps, [outcome], cpus[-1]))
            _plot(mod, sub.dir)
    result = _result(mod, params, seed, repeat, caps, outcomes, statistics.fmean(cpus))
    folder.finish(result)
    if repeat == 1:
        _plot(mod, folder.dir)
    return EXIT_OK if all(c["holds"] for c in result["claims"]) else EXIT_CLAIM


def run(names: list[str], sets: list[str], *, quick: bool, seed: int, out: Path,
        repeat: int, lab: str, progress: Any) -> int:
    if repeat < 1 or repeat > 50:
        raise UsageError(f"--repeat {repeat}: use 1 to 50")
    planned = plan(names, sets, quick)
    caps = detect()
    for mod, _ in planned:
        require(caps, mod.NEEDS, mod.NAME)
    code = EXIT_OK
    for mod, params in planned:
        try:
            result = run_one(mod, params, out, seed=seed, repeat=repeat, lab=lab, caps=caps,
                             progress=progress)
        except LabInterrupted:
            raise
        except LblabError as exc:
            write_json(out / mod.NAME / "error.json", {"error": str(exc)})
            print(f"lblab: {mod.NAME}: {exc}", file=sys.stderr)
            result = exc.exit_code
        except Exception:  # noqa: BLE001 - record, go on with the next experiment
            write_json(out / mod.NAME / "error.json", {"error": traceback.format_exc()})
            print(f"lblab: {mod.NAME}: internal failure:\n{traceback.format_exc()}",
                  file=sys.stderr)
            result = EXIT_INTERNAL
        code = max(code, result)
    return code
