"""`lblab run`: validate everything, then hand each experiment to the driver.

All input is checked first (experiment names, every `--set`, `--only`, `--repeat`, the lab
name, the output folder, the capabilities each experiment needs), so bad input exits 2
having created nothing. `--dry-run` prints the plan and stops there.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from lblab import catalogue, driver
from lblab.capabilities import detect, require
from lblab.errors import LabInterrupted, LblabError, UsageError
from lblab.lab import check_lab_name
from lblab.params import apply_overrides
from lblab.results import write_json

EXIT_OK, EXIT_CLAIM, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
MAX_REPEAT = 50


@dataclass
class Planned:
    exp: Any
    params: Any
    variants: list[driver.VariantPlan]

    @property
    def seconds(self) -> float:
        return driver.estimate_s(self.exp, self.variants)


def plan(names: list[str], sets: list[str], quick: bool,
         only: list[str] | None = None) -> list[Planned]:
    """(experiment, params, variants) per experiment, every `--set` applied and validated.

    `key=value` applies to every selected experiment that has `key`; `name.key=value` to one.
    `--only` keeps the named variants; experiments that have none of them are left out, and a
    name no selected experiment has is an error.
    """
    single = len(names) == 1 and names != ["all"]
    if names == ["all"]:
        names = catalogue.names()
    exps = [catalogue.load(n) for n in dict.fromkeys(names)]
    used: set[str] = set()
    planned = []
    for exp in exps:
        params = exp.quick() if quick else exp.Params()
        own = {f.name for f in fields(params)}
        mine = []
        for item in sets:
            key = item.split("=", 1)[0].strip()
            target, _, bare = key.rpartition(".")
            if target and target != exp.name:
                continue
            if target or bare in own or single:
                mine.append(item.replace(f"{exp.name}.", "", 1) if target else item)
                used.add(item)
        params = apply_overrides(exp.name, params, mine)
        variants = driver.plan_variants(exp, params)
        if only:
            keep = [v for v in variants if v.name in only]
            if not keep and single:
                driver.plan_variants(exp, params, only)  # raises, naming the variants
            variants = keep
        if variants:
            planned.append(Planned(exp, params, variants))
    unused = [s for s in sets if s not in used]
    if unused:
        raise UsageError(f"--set {unused[0]}: no selected experiment has that parameter")
    if only:
        known = {v.name for p in planned for v in p.variants}
        missing = [o for o in only if o not in known]
        if missing:
            raise UsageError(f"--only {missing[0]}: no selected experiment has that variant")
    return planned


def check_out(out: Path) -> None:
    """The results folder must be creatable and writable: refuse before anything runs."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {out}: {probe} is not a folder")
    if str(out.resolve()).startswith(("/proc/", "/sys/", "/dev/")) or \
            out.resolve() in (Path("/proc"), Path("/sys"), Path("/dev")):
        raise UsageError(f"--out {out}: not a place for results (a kernel file system)")
    if not os.access(probe, os.W_OK):
        raise UsageError(f"--out {out}: {probe} is not writable")


def check_lab_free(lab: str) -> None:
    """A lab of this name already running (or crashed and not cleaned) is refused here,
    before any results folder exists; `Lab` checks again when it claims the name."""
    from lblab import owned

    path = owned.labs_dir() / f"{lab}.json"
    if not path.exists():
        return
    try:
        other = owned.Owned.load(path)
    except (OSError, ValueError, KeyError):
        raise UsageError(f"lab {lab!r} has an unreadable state file {path}; "
                         f"run `lblab clean {lab}`") from None
    if other.owner_alive():
        raise UsageError(f"lab {lab!r} is already running (pid {other.owner_pid}); "
                         "stop it first or pick another --lab name")
    raise UsageError(f"lab {lab!r} crashed and left resources behind; "
                     f"run `lblab clean {lab}` first")


def check_repeat(repeat: int) -> None:
    if not 1 <= repeat <= MAX_REPEAT:
        raise UsageError(f"--repeat {repeat}: use 1 to {MAX_REPEAT}")


def describe_plan(planned: list[Planned], repeat: int) -> list[dict]:
    """The dry-run's rows: what would run, with which parameters, for how long."""
    rows = []
    for p in planned:
        defaults = asdict(p.exp.Params())
        changed = {k: v for k, v in asdict(p.params).items() if defaults.get(k) != v}
        rows.append({"experiment": p.exp.name, "variants": p.variants,
                     "changed": changed, "seconds": p.seconds * repeat,
                     "needs": p.exp.needs})
    return rows


def run(names: list[str], sets: list[str], *, quick: bool, seed: int, out: Path,
        repeat: int = 1, lab: str = "lblab", progress: driver.Progress | None = None,
        only: list[str] | None = None, keep_lab_on_failure: bool = False) -> int:
    check_repeat(repeat)
    check_lab_name(lab)
    check_out(out)
    planned = plan(names, sets, quick, only)
    check_lab_free(lab)
    caps = detect()
    for p in planned:
        require(caps, p.exp.needs, p.exp.name)
    opts = driver.RunOptions(seed=seed, repeat=repeat, lab_name=lab,
                             only=[v.name for p in planned for v in p.variants] if only else None,
                             keep_lab_on_failure=keep_lab_on_failure,
                             progress=progress or driver.Progress(), caps=caps)
    code = EXIT_OK
    for p in planned:
        opts.only = [v.name for v in p.variants] if only else None
        try:
            result = EXIT_OK if driver.run_experiment(p.exp, p.params, out, opts) \
                else EXIT_CLAIM
        except LabInterrupted:
            raise
        except LblabError as exc:
            write_json(out / p.exp.name / "error.json", {"error": str(exc)})
            print(f"lblab: {p.exp.name}: {exc}", file=sys.stderr)
            result = exc.exit_code
        except Exception:  # noqa: BLE001 - record, go on with the next experiment
            write_json(out / p.exp.name / "error.json", {"error": traceback.format_exc()})
            print(f"lblab: {p.exp.name}: internal failure:\n{traceback.format_exc()}",
                  file=sys.stderr)
            result = EXIT_INTERNAL
        code = max(code, result)
    return code
