"""`lblab sweep`: a grid of parameter points, each a normal `lblab run`, here or on Dask.

Planning is data (`plan_sweep` -> `SweepPlan` of `Axis` and `Point`): every `--grid
key=a,b,c` value goes through the same parsing and range checks as `--set`, and every point
(the fixed `--set`s plus one value per axis) is planned like `lblab run` would plan it, so a
bad key, a bad value, an empty grid or a combination the experiment's `validate` refuses is
one line and exit 2 before anything exists. A point's folder `DIR/<point>/` is a results
folder of its own (`DIR/<point>/<experiment>/result.json`, `DIR/<point>/report.html`), named
from its swept values in grid order, `routers=3,rate=200`: stable for the same values (numbers
in their canonical form, so `200` and `200.0` are one point) and filesystem-safe (anything but
letters, digits and `._+-~` percent-encoded; very long names end in a hash).

Two executors share the plan and the bookkeeping (`Tracker`, `Outcome`):
- `run_local`: the points one after another in this process, each through `runner.run`
  exactly as `lblab run` does, one lab at a time.
- `run_dask`: each point is a task (`run_point`) that needs the worker resource `lab=1`, so a
  machine never runs two labs; it runs `lblab run` as a subprocess (its own session) into a
  temporary folder, bounded by `time_limit_s` (from the plan's ETA; SIGTERM so the lab is torn
  down, SIGKILL after a grace, when the lab's guardian tears it down), and returns the folder
  as a tar that the client unpacks into `DIR/<point>/`.
Either way a point without a complete result.json (failed, timed out, the task lost) is
reported and retried once; the rest of the sweep goes on. A claim that does not hold is a
result, not a failure. `--resume` skips points whose result.json is complete and was made
with this point's parameters, seed and repetitions.

`DIR/sweep.json` holds the plan and each point's outcome (rewritten as points finish), then
the per-claim data of the sweep report; `DIR/index.html` shows, per claim id, predicted and
measured against the first swept parameter (one line per combination of the others), one
plot per claim with the verdict at every point, and links to each point's report. Both are
drawn from the folder alone (`write_report`).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lblab import runner
from lblab.errors import LabInterrupted, LblabError, UsageError
from lblab.params import apply_overrides
from lblab.results import atomic_write, load_result, write_json

SCHEMA = 1
SWEEP_JSON = "sweep.json"
INDEX = "index.html"
MAX_POINTS = 500
NAME_MAX = 200
"""Longest point folder name (bytes) before it is shortened and ends in a hash."""
TIME_FACTOR, TIME_SLACK_S = 3.0, 180.0
"""A Dask point's time limit: TIME_FACTOR x its declared seconds (bring-up included) + slack."""
POLL_S = 0.5
"""How often the client looks at its Dask tasks (and refreshes the progress)."""
STOP_GRACE_S = 60.0
"""After the time limit: how long a SIGTERMed run may take to tear its lab down."""


# -- planning -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One `--grid key=a,b,c`: its values parsed and validated, in the order given."""

    key: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]
    """Each value's canonical text: what `--set` gets and what folder names are made of."""


@dataclass(frozen=True)
class Point:
    """One point of the grid: a normal run of the experiment."""

    name: str
    """Its folder under DIR: `key=value,...` in grid order."""
    values: tuple[tuple[str, Any], ...]
    """(key, parsed value) per axis."""
    sets: tuple[str, ...]
    """Every `--set` of its run: the sweep's fixed ones, then one per axis."""
    params: dict[str, Any] = field(compare=False, hash=False)
    """The run's parameters as result.json records them."""
    seconds: float = 0.0
    """Declared duration of the run (every repetition, bring-up included)."""

    def value(self, key: str) -> Any:
        return dict(self.values)[key]


@dataclass(frozen=True)
class SweepPlan:
    experiment: str
    axes: tuple[Axis, ...]
    points: tuple[Point, ...]
    sets: tuple[str, ...] = ()
    quick: bool = False
    repeat: int = 1
    seed: int = 1

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.points)

    def run_argv(self, point: Point, lab: str) -> list[str]:
        """`lblab run` arguments for the point (without --out)."""
        argv = ["run", self.experiment, "--seed", str(self.seed), "--repeat", str(self.repeat),
                "--lab", lab]
        for s in point.sets:
            argv += ["--set", s]
        return argv + (["--quick"] if self.quick else [])

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "quick": self.quick, "repeat": self.repeat,
                "seed": self.seed, "sets": list(self.sets),
                "grid": [{"key": a.key, "values": list(a.values)} for a in self.axes]}


def value_text(value: Any) -> str:
    """A parsed value's canonical text: `200.0` -> `200`, True -> `true`; it parses back to
    the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (tuple, list)):
        return ",".join(value_text(v) for v in value)
    return str(value)


def point_name(pairs: Iterable[tuple[str, str]]) -> str:
    """`key=value,...`, each value percent-encoded but for letters, digits and `._+-~`."""
    name = ",".join(f"{k}={urllib.parse.quote(t, safe='+')}" for k, t in pairs)
    if len(name.encode()) > NAME_MAX:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = f"{name[:NAME_MAX - 13]}~{digest}"
    return name


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """`key=a,b,c` strings -> (key, [text, ...]); the syntax only (values are checked by
    `plan_sweep` against the experiment's parameters)."""
    if not items:
        raise UsageError("lblab sweep needs at least one --grid KEY=V1,V2,...")
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise UsageError(f"--grid {item}: no values; give KEY=V1,V2,...")
        if key in {k for k, _ in axes}:
            raise UsageError(f"--grid {key}: given twice; put all its values in one --grid")
        axes.append((key, values))
    return axes


def plan_sweep(name: str, grid: list[str], sets: list[str], *, quick: bool = False,
               repeat: int = 1, seed: int = 1) -> SweepPlan:
    """The grid's points, each validated as `lblab run NAME --set ...` would validate it."""
    if name == "all":
        raise UsageError("lblab sweep takes one experiment, not all")
    runner.check_repeat(repeat)
    axes_text = parse_grid(grid)
    base = runner.plan([name], sets, quick)[0]
    fixed = {s.partition("=")[0].strip().rpartition(".")[2] for s in sets}
    axes = []
    for key, texts in axes_text:
        if key in fixed:
            raise UsageError(f"--grid {key}: also given with --set; sweep it or set it")
        values = [getattr(apply_overrides(base.exp.name, base.params, [f"{key}={t}"]), key)
                  for t in texts]
        canonical = [value_text(v) for v in values]
        twice = [c for i, c in enumerate(canonical) if c in canonical[:i]]
        if twice:
            raise UsageError(f"--grid {key}: the value {twice[0]} is given twice")
        axes.append(Axis(key, tuple(values), tuple(canonical)))
    count = math.prod(len(a.values) for a in axes)
    if count > MAX_POINTS:
        raise UsageError(f"--grid: {count} points; at most {MAX_POINTS} in one sweep")
    points = []
    for combo in itertools.product(*(range(len(a.values)) for a in axes)):
        pairs = [(a.key, a.texts[i]) for a, i in zip(axes, combo, strict=True)]
        assignments = [f"{k}={t}" for k, t in pairs]
        planned = runner.plan([name], [*sets, *assignments], quick)[0]
        points.append(Point(point_name(pairs),
                            tuple((a.key, a.values[i]) for a, i in zip(axes, combo, strict=True)),
                            (*sets, *assignments), _jsonable(asdict(planned.params)),
                            planned.seconds * repeat))
    return SweepPlan(base.exp.name, tuple(axes), tuple(points), tuple(sets), quick, repeat,
                     seed)


def _jsonable(data: Any) -> Any:
    """As result.json stores it (tuples become lists)."""
    return json.loads(json.dumps(data, default=str))


def time_limit_s(point: Point) -> float:
    return TIME_FACTOR * point.seconds + TIME_SLACK_S


# -- what is already there ----------------------------------------------------------------
def point_result(plan: SweepPlan, point: Point, root: Path) -> dict | None:
    """The point's result.json when it is complete and was made by this point's run (its
    parameters, seed and repetitions), else None."""
    try:
        result = load_result(root / point.name / plan.experiment)
    except (OSError, ValueError):
        return None
    if result is None or result.get("params") != point.params or \
            result.get("seed") != plan.seed or result.get("repeat", 1) != plan.repeat:
        return None
    return result


def check_folders(plan: SweepPlan, root: Path) -> None:
    """Every point folder that already exists must be one lblab made: refuse before
    anything runs rather than clear someone's files."""
    runner.check_out(root)
    for point in plan.points:
        folder = root / point.name
        if not folder.exists():
            continue
        if not folder.is_dir():
            raise UsageError(f"{folder} exists and is not a folder; pick another --out")
        foreign = [p.name for p in folder.iterdir()
                   if p.name not in (plan.experiment, "report.html", "run.log")]
        if foreign:
            raise UsageError(f"{folder} holds {foreign[0]}, which is not an lblab point's; "
                             "pick another --out")


def pending(plan: SweepPlan, root: Path, resume: bool) -> tuple[list[Point], list[Point]]:
    """(points to run, points kept): with `resume`, a point with a complete result.json of
    its own run is kept."""
    kept = [p for p in plan.points if resume and point_result(plan, p, root) is not None]
    return [p for p in plan.points if p not in kept], kept


# -- bookkeeping --------------------------------------------------------------------------
Status = Literal["done", "failed", "kept"]


@dataclass
class Outcome:
    point: str
    status: Status
    """done: a complete result.json (its claims may or may not hold); kept: --resume found
    one; failed: none after the retry."""
    code: int
    """The point's exit code (as `lblab run`'s); 3 when it could not tell (timeout, lost)."""
    attempts: int = 0
    seconds: float = 0.0
    where: str = ""
    message: str = ""


@dataclass
class Tracker:
    """Points done / running / failed and the sweep's ETA."""

    plan: SweepPlan
    lanes: int = 1
    """How many points can run at once (labs: 1 here, the lab workers on Dask)."""
    scheduler: str | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    """Point name -> when it started (monotonic)."""

    def start(self, name: str, now: float | None = None) -> None:
        self.running.setdefault(name, time.monotonic() if now is None else now)

    def finish(self, outcome: Outcome) -> None:
        self.running.pop(outcome.point, None)
        self.outcomes[outcome.point] = outcome

    def counts(self) -> dict[str, int]:
        states = [o.status for o in self.outcomes.values()]
        c = {s: states.count(s) for s in ("done", "failed", "kept")}
        c["running"] = len(self.running)
        c["total"] = len(self.plan.points)
        c["queued"] = c["total"] - len(self.outcomes) - c["running"]
        return c

    def eta_s(self, now: float | None = None) -> float:
        """What is left, at the pace measured so far (actual / declared seconds of the points
        that ran; 1 before any has), over the lanes."""
        now = time.monotonic() if now is None else now
        declared = {p.name: p.seconds for p in self.plan.points}
        ran = [o for o in self.outcomes.values() if o.status != "kept" and o.seconds > 0]
        planned = sum(declared[o.point] for o in ran)
        pace = sum(o.seconds for o in ran) / planned if planned > 0 else 1.0
        left = 0.0
        for p in self.plan.points:
            if p.name in self.outcomes:
                continue
            need = p.seconds * pace
            if p.name in self.running:
                need = max(0.0, need - (now - self.running[p.name]))
            left += need
        return left / max(1, self.lanes)

    def exit_code(self) -> int:
        return max((o.code for o in self.outcomes.values()), default=0)


class SweepProgress:
    """What a sweep tells the user; the CLI shows it with rich, tests ignore it."""

    def begin(self, tracker: Tracker) -> None: ...

    def update(self, tracker: Tracker) -> None: ...

    def note(self, message: str) -> None: ...

    def run_progress(self) -> Any:
        """The driver's progress for a point run in this process."""
        from lblab import driver

        return driver.Progress()

    def end(self) -> None: ...


def conclude(plan: SweepPlan, point: Point, root: Path, code: int, attempt: int,
             seconds: float, where: str, message: str = "") -> Outcome:
    """A point's outcome from its folder: done when its result.json is complete. The point's
    report.html is (re)drawn here, so its links are right wherever it ran."""
    from lblab.report import report

    folder = root / point.name
    note = ""
    try:
        report(folder)
    except UsageError:
        pass  # nothing there to report on; the outcome says why
    except Exception as exc:  # noqa: BLE001 - the point's data stands; say its page failed
        note = f"its report.html failed: {exc!r}"
    result = point_result(plan, point, root)
    if result is not None:
        from lblab.driver import run_ok

        code = 0 if run_ok(result) else 1
        return Outcome(point.name, "done", code, attempt, round(seconds, 1), where, note)
    error = folder / plan.experiment / "error.json"
    if not message and error.exists():
        message = json.loads(error.read_text())["error"].strip().splitlines()[-1]
    return Outcome(point.name, "failed", code if code >= 2 else 3, attempt,
                   round(seconds, 1), where, message or f"no result.json (exit {code})")


def kept_outcome(plan: SweepPlan, point: Point, root: Path) -> Outcome:
    from lblab.driver import run_ok

    result = point_result(plan, point, root)
    assert result is not None
    return Outcome(point.name, "kept", 0 if run_ok(result) else 1, 0,
                   result.get("duration_s", 0.0), "", "kept (--resume)")


def write_state(plan: SweepPlan, root: Path, tracker: Tracker) -> None:
    """DIR/sweep.json: the plan and every point's outcome so far."""
    rows = []
    for p in plan.points:
        o = tracker.outcomes.get(p.name)
        rows.append({"name": p.name, "values": dict(p.values), "sets": list(p.sets),
                     "declared_s": round(p.seconds, 1),
                     "status": o.status if o else "running" if p.name in tracker.running
                     else "pending",
                     **({k: v for k, v in asdict(o).items() if k not in ("point", "status")}
                        if o else {})})
    old = _read_json(root / SWEEP_JSON) or {}
    write_json(root / SWEEP_JSON, {"schema": SCHEMA, **plan.to_json(),
                                   "scheduler": tracker.scheduler,
                                   "started": old.get("started") or time.strftime(
                                       "%Y-%m-%dT%H:%M:%S%z"),
                                   "points": rows})


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- running ------------------------------------------------------------------------------
def run_sweep(plan: SweepPlan, root: Path, todo: list[Point], kept: list[Point], *,
              lab: str, progress: SweepProgress, client: Any = None,
              scheduler: str | None = None) -> Tracker:
    """Run the points to do (here, or on Dask with `client`), recording as they finish."""
    tracker = Tracker(plan, lanes=lab_workers(client) if client is not None else 1,
                      scheduler=scheduler)
    root.mkdir(parents=True, exist_ok=True)
    for p in kept:
        tracker.finish(kept_outcome(plan, p, root))
    write_state(plan, root, tracker)
    progress.begin(tracker)
    try:
        if client is None:
            run_local(plan, root, todo, lab, tracker, progress)
        else:
            run_dask(plan, root, todo, lab, tracker, progress, client)
    finally:
        tracker.running.clear()
        write_state(plan, root, tracker)
        progress.end()
    return tracker


def _record(plan: SweepPlan, root: Path, point: Point, outcome: Outcome, tracker: Tracker,
            progress: SweepProgress) -> bool:
    """Book an attempt's outcome; True when the point needs another attempt."""
    if outcome.status == "failed" and outcome.attempts < 2:
        progress.note(f"{point.name}: failed ({outcome.message}); retrying once")
        return True
    tracker.finish(outcome)
    if outcome.status == "failed":
        progress.note(f"{point.name}: failed twice ({outcome.message}); the sweep goes on")
    else:
        said = "claims hold" if outcome.code == 0 else "a claim does not hold"
        where = f", {outcome.where}" if outcome.where else ""
        progress.note(f"{point.name}: {said} ({outcome.seconds:.0f} s{where})")
    write_state(plan, root, tracker)
    progress.update(tracker)
    return False


def run_local(plan: SweepPlan, root: Path, todo: list[Point], lab: str, tracker: Tracker,
              progress: SweepProgress) -> None:
    """The points one after another in this process, each as `lblab run` runs it."""
    for point in todo:
        for attempt in (1, 2):
            tracker.start(point.name)
            progress.update(tracker)
            t0 = time.monotonic()
            message = ""
            try:
                code = runner.run([plan.experiment], list(point.sets), quick=plan.quick,
                                  seed=plan.seed, out=root / point.name, repeat=plan.repeat,
                                  lab=lab, progress=progress.run_progress())
            except LabInterrupted:
                raise
            except LblabError as exc:
                code, message = exc.exit_code, str(exc)
            except Exception:  # noqa: BLE001 - a point's failure is reported, the sweep goes on
                code, message = 3, traceback.format_exc().strip().splitlines()[-1]
            outcome = conclude(plan, point, root, code, attempt, time.monotonic() - t0,
                               socket.gethostname(), message)
            if not _record(plan, root, point, outcome, tracker, progress):
                break


def connect(address: str, wait_s: float = 10.0) -> Any:
    """A Dask client of the scheduler at `address` that has at least one lab worker."""
    import logging

    if not address.startswith(("tcp://", "tls://")) or ":" not in address.split("://", 1)[1]:
        raise UsageError(f"--scheduler {address}: use tcp://HOST:PORT (or tls://HOST:PORT)")
    from distributed import Client

    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        client = Client(address, timeout=wait_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"--scheduler {address}: no scheduler answers there "
                         f"({type(exc).__name__})") from None
    deadline = time.monotonic() + wait_s
    while not lab_workers(client) and time.monotonic() < deadline:
        time.sleep(0.5)
    if not lab_workers(client):
        client.close()
        raise UsageError(f"--scheduler {address}: no worker offers the resource lab=1; start "
                         f"`dask worker {address} --nthreads 1 --resources lab=1` as root")
    return client


def lab_workers(client: Any) -> int:
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return sum(1 for w in workers.values() if (w.get("resources") or {}).get("lab", 0) >= 1)


def run_dask(plan: SweepPlan, root: Path, todo: list[Point], lab: str, tracker: Tracker,
             progress: SweepProgress, client: Any) -> None:
    """Each point a task needing `lab=1`; results come back as tars into DIR/<point>/."""
    from distributed import Event

    sweep_id = uuid.uuid4().hex[:8]
    stop = Event(f"lblab-sweep-{sweep_id}-stop", client=client)
    futures: dict[Any, tuple[Point, int]] = {}

    def submit(point: Point, attempt: int) -> None:
        key = f"lblab-sweep-{sweep_id}-{point.name}-{attempt}"
        future = client.submit(run_point, plan.run_argv(point, lab), time_limit_s(point),
                               stop.name, key=key, resources={"lab": 1}, pure=False)
        futures[future] = (point, attempt)

    for point in todo:
        submit(point, 1)
    progress.update(tracker)
    try:
        while futures:
            time.sleep(POLL_S)
            done = [f for f in futures if f.done()]
            _refresh_running(client, futures, tracker)
            for future in done:
                point, attempt = futures.pop(future)
                outcome = _collect(plan, root, point, attempt, future, tracker)
                future.release()
                if _record(plan, root, point, outcome, tracker, progress):
                    submit(point, attempt + 1)
            progress.update(tracker)
    except BaseException:
        stop.set()  # running points stop their `lblab run` (their labs are torn down)
        client.cancel(list(futures))
        raise


def _refresh_running(client: Any, futures: dict[Any, tuple[Point, int]],
                     tracker: Tracker) -> None:
    """A point runs when the scheduler has its task processing on a worker (with lab=1, a
    worker only takes a task when its lab is free)."""
    by_key = {f.key: p.name for f, (p, _) in futures.items()}
    busy = {by_key[k] for keys in client.processing().values() for k in keys if k in by_key}
    for name in busy:
        tracker.start(name)
    for name in [n for n in tracker.running if n not in busy and n in by_key.values()]:
        tracker.running.pop(name)


def _collect(plan: SweepPlan, root: Path, point: Point, attempt: int, future: Any,
             tracker: Tracker) -> Outcome:
    started = tracker.running.get(point.name, time.monotonic())
    if future.status != "finished":
        exc = future.exception()
        return Outcome(point.name, "failed", 3, attempt, round(time.monotonic() - started, 1),
                       "", f"task {future.status}: {type(exc).__name__}: {exc}")
    data = future.result()
    unpack(data["tar"], root / point.name)
    if data["timed_out"]:  # a stopped run exits 130 or by a signal: neither is the point's
        return conclude(plan, point, root, 3, attempt, data["seconds"], data["host"],
                        f"timed out after {data['seconds']:.0f} s (limit "
                        f"{time_limit_s(point):.0f} s)")
    return conclude(plan, point, root, data["code"], attempt, data["seconds"], data["host"])


def run_point(argv: list[str], limit_s: float, stop_event: str | None = None) -> dict:
    """On a Dask worker: `lblab run ARGV --out TMP` as a subprocess in its own session,
    bounded by `limit_s` (SIGTERM, so the run tears its lab down; SIGKILL after a grace, and
    the lab's guardian tears it down), stopped early when the sweep's `stop_event` is set.
    Returns the exit code and the results folder as a tar (with the run's output, run.log)."""
    from lblab.proc import ProcRecord, stop_all

    tmp = Path(tempfile.mkdtemp(prefix="lblab-point-"))
    out = tmp / "out"
    t0 = time.monotonic()
    timed_out = False
    try:
        with open(tmp / "run.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "lblab.cli", *argv, "--out",
                                     str(out)], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                record: ProcRecord | None = ProcRecord.of(proc.pid, "lblab run")
            except ProcessLookupError:
                record = None  # it exited already; wait() collects it
            try:
                while proc.poll() is None:
                    if time.monotonic() - t0 > limit_s or _stop_requested(stop_event):
                        timed_out = time.monotonic() - t0 > limit_s
                        break
                    time.sleep(1.0)
            finally:
                if proc.poll() is None and record is not None:
                    stop_all([record], grace_s=STOP_GRACE_S, reap=False)
                code = proc.wait()
        out.mkdir(exist_ok=True)
        shutil.copyfile(tmp / "run.log", out / "run.log")
        return {"code": code, "timed_out": timed_out, "host": socket.gethostname(),
                "seconds": round(time.monotonic() - t0, 1), "tar": pack(out)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stop_requested(name: str | None) -> bool:
    if not name:
        return False
    from distributed import Event

    try:
        return Event(name).is_set()
    except Exception:  # noqa: BLE001 - no scheduler to ask: go on until the time limit
        return False


def pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buf.getvalue()


def unpack(data: bytes, dest: Path) -> None:
    """A point's tar into `dest` (replacing what was there): regular files only, none outside
    `dest`; unpacked beside it first, so `dest` is never half-written."""
    partial = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            target = (partial / member.name).resolve()
            if not member.isfile() or not target.is_relative_to(partial.resolve()):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(partial, dest)


# -- the sweep report ---------------------------------------------------------------------
def report_data(root: Path) -> dict[str, Any]:
    """From DIR/sweep.json and the points' result.json files: per point its outcome and
    claims; per claim id its row at every point, against the first swept parameter."""
    from lblab.report import status, verdict

    sweep = _read_json(root / SWEEP_JSON)
    if not sweep or sweep.get("schema") != SCHEMA:
        raise UsageError(f"{root} has no {SWEEP_JSON} of this lblab (run `lblab sweep` there)")
    keys = [g["key"] for g in sweep["grid"]]
    x_key, series_keys = keys[0], keys[1:]
    points, ids = [], []
    for row in sweep["points"]:
        try:
            result = load_result(root / row["name"] / sweep["experiment"])
        except (OSError, ValueError):
            result = None
        claims = {c["id"]: c for c in (result or {}).get("claims", [])}
        ids += [c for c in claims if c not in ids]
        points.append({**row, "complete": result is not None, "claims": claims,
                       "href": urllib.parse.quote(row["name"]) + "/report.html",
                       "holding": sum(bool(c.get("holds")) for c in claims.values()),
                       "counted": sum(not c.get("skipped") for c in claims.values()),
                       "series": ", ".join(f"{k}={value_text(row['values'][k])}"
                                             for k in series_keys)})
    claims = []
    for cid in ids:
        rows = []
        for p in points:
            c = p["claims"].get(cid)
            rows.append({"point": p["name"], "x": p["values"][x_key], "series": p["series"],
                         "claim": c or {}, "status": status(c) if c else "missing",
                         "verdict": verdict(c) if c else "absent from its result"
                         if p["complete"] else "no result"})
        first = next(r["claim"] for r in rows if r["claim"])
        claims.append({"id": cid, "statement": first.get("statement", ""),
                       "plot": f"claims/{_file_safe(cid)}.png", "rows": rows,
                       "holding": sum(r["status"] == "holds" for r in rows),
                       "counted": sum(r["status"] in ("holds", "fails", "missing")
                                      for r in rows)})
    return {"sweep": sweep, "x": x_key, "series_keys": series_keys, "points": points,
            "claims": claims}


def _file_safe(text: str) -> str:
    return urllib.parse.quote(text, safe="+")


def plot_claim(claim: dict[str, Any], x_key: str, path: Path) -> Path:
    """Predicted (dashed, with its tolerance band) and measured against x, one line per
    series; each point's marker says its verdict."""
    from lblab import plots

    rows = claim["rows"]
    numeric = all(isinstance(r["x"], (int, float)) and not isinstance(r["x"], bool)
                  for r in rows)
    labels = list(dict.fromkeys(str(r["x"]) for r in rows))
    series = list(dict.fromkeys(r["series"] for r in rows))
    fig, ax = plots.figure(7.5, 4.2)
    marks = {"holds": ("o", "#1a7f37"), "fails": ("X", "#c62828"),
             "skipped": ("s", "#b26a00"), "missing": ("x", "#777777")}
    seen: set[str] = set()
    for s in series:
        mine = [r for r in rows if r["series"] == s]
        xs = [r["x"] if numeric else labels.index(str(r["x"])) for r in mine]
        colour = plots.colour(series, s)
        pred = [_num(r["claim"].get("predicted")) for r in mine]
        low, high = zip(*(_band(r["claim"]) for r in mine), strict=True)
        tag = f" ({s})" if s else ""
        ax.plot(xs, pred, "--", color=colour, lw=1.2, label=f"predicted{tag}")
        if any(v is not None for v in low):
            ax.fill_between(xs, [math.nan if v is None else v for v in low],
                            [math.nan if v is None else v for v in high], color=colour,
                            alpha=0.12, lw=0, label=f"holds if inside{tag}")
        measured = [_num(r["claim"].get("measured")) for r in mine]
        ax.plot(xs, measured, "-", color=colour, lw=1.0, alpha=0.7, label=f"measured{tag}")
        for x, m, p, r in zip(xs, measured, pred, mine, strict=True):
            runs = [v for v in r["claim"].get("runs") or [] if v is not None]
            if len(runs) > 1:
                ax.scatter([x] * len(runs), runs, s=10, color=colour, alpha=0.4, zorder=2)
            y = m if not math.isnan(m) else p
            if math.isnan(y):
                continue
            marker, mc = marks[r["status"]]
            ax.scatter([x], [y], marker=marker, s=70, color=mc, zorder=3,
                       label=r["verdict"] if r["status"] not in seen else None)
            seen.add(r["status"])
    if numeric:
        ax.set_xticks(sorted({r["x"] for r in rows}))
    else:
        ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(x_key)
    ax.set_ylabel(claim["id"])
    ax.set_title("\n".join(textwrap.wrap(claim["statement"], 100)[:2]), fontsize=8)
    ax.legend(fontsize=7, loc="best")
    path.parent.mkdir(parents=True, exist_ok=True)
    return plots.save(fig, path)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else math.nan


def _band(c: dict) -> tuple[float | None, float | None]:
    """The range of measurements for which the claim holds, where it is a range."""
    p, tol, kind = _num(c.get("predicted")), c.get("tolerance_value") or 0.0, c.get("comparison")
    if math.isnan(p):
        return None, None
    if kind == "within":
        spread = tol if p == 0 else tol * abs(p)
        return p - spread, p + spread
    if kind == "near":
        return p - tol, p + tol
    if kind == "between" and c.get("upper") is not None:
        return p - tol, float(c["upper"]) + tol
    return None, None


def write_report(root: Path) -> Path:
    """DIR/index.html and a plot per claim, and the claims' data into DIR/sweep.json."""
    from lblab.report import TEMPLATES, fmt, predicted_text

    data = report_data(root)
    for claim in data["claims"]:
        plot_claim(claim, data["x"], root / claim["plot"])
    sweep = data["sweep"]
    sweep["claims"] = [{"id": c["id"], "statement": c["statement"], "plot": c["plot"],
                        "points": [{"point": r["point"], "x": r["x"], "series": r["series"],
                                    "predicted": r["claim"].get("predicted"),
                                    "upper": r["claim"].get("upper"),
                                    "measured": r["claim"].get("measured"),
                                    "verdict": r["verdict"], "status": r["status"]}
                                   for r in c["rows"]]} for c in data["claims"]]
    write_json(root / SWEEP_JSON, sweep)
    html = TEMPLATES.get_template("sweep.html.j2").render(
        title=f"lblab sweep: {sweep['experiment']}", root=str(root.resolve()), fmt=fmt,
        predicted_text=predicted_text, value_text=value_text, **data)
    page = root / INDEX
    atomic_write(page, html)
    return page
