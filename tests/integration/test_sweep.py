"""`lblab sweep` for real: a two-point quick sweep of asymmetric-routing (the fastest quick
run of the candidates, ~15 s a point) over `routers=2,3`, whose prediction for independent
hashing moves from 1/2 to 2/3. Once through a Dask scheduler and one worker with `lab=1` on
loopback (started here as subprocesses, stopped by PID), once on this machine, then resumed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lblab.cli import main
from lblab.proc import ProcRecord, stop_all

pytestmark = pytest.mark.integration

EXP = "asymmetric-routing"
POINTS = ["routers=2", "routers=3"]
DASK = str(Path(sys.executable).parent / "dask")


def _start(argv: list[str], log: Path) -> ProcRecord:
    with open(log, "wb") as f:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True, env=dict(os.environ))
    return ProcRecord.of(proc.pid, argv[1])


def _wait_for(what: str, check, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready after {timeout_s} s")


@pytest.fixture
def scheduler(tmp_path):
    """A Dask scheduler and one worker (`--nthreads 1 --resources lab=1`) on 127.0.0.1."""
    started: list[ProcRecord] = []
    info = tmp_path / "scheduler.json"
    try:
        started.append(_start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(info)],
                              tmp_path / "scheduler.log"))

        def address():
            try:
                return json.loads(info.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        addr = _wait_for("the scheduler", address)
        started.append(_start([DASK, "worker", addr, "--host", "127.0.0.1", "--nthreads", "1",
                               "--resources", "lab=1", "--no-dashboard",
                               "--local-directory", str(tmp_path / "dask-worker")],
                              tmp_path / "worker.log"))
        yield addr
    finally:
        left = stop_all(started, grace_s=10.0)
        assert not left, f"dask processes still running: {left}"


def _check_sweep(out: Path, code: int, scheduler: str | None) -> dict:
    state = json.loads((out / "sweep.json").read_text())
    assert state["scheduler"] == scheduler
    assert [p["name"] for p in state["points"]] == POINTS
    assert [p["status"] for p in state["points"]] == ["done", "done"], state["points"]
    codes = []
    for name, routers in zip(POINTS, (2, 3), strict=True):
        result = json.loads((out / name / EXP / "result.json").read_text())
        assert result["params"]["routers"] == routers and result["params"]["connections"] == 200
        assert not (out / name / EXP / "RUNNING").exists()
        assert (out / name / "report.html").exists()
        assert list((out / name / EXP).glob("*.png"))
        breaks = next(c for c in result["claims"] if c["id"] == "independent-breaks")
        assert breaks["predicted"] == pytest.approx((routers - 1) / routers, abs=1e-3)
        codes.append(0 if all(c["holds"] or c["skipped"] for c in result["claims"])
                     and not result["measurement_problems"] else 1)
    assert code == max(codes), "the sweep's exit code is its points' worst"
    html = (out / "index.html").read_text()
    assert 'href="routers%3D2/report.html"' in html and 'href="routers%3D3/report.html"' in html
    ids = [c["id"] for c in state["claims"]]
    assert "independent-breaks" in ids
    for c in state["claims"]:
        assert [p["point"] for p in c["points"]] == POINTS
        assert (out / c["plot"]).stat().st_size > 1000
        assert f'src="{c["plot"]}"' in html
    return state


def _compare_points(out: Path, tmp_path: Path) -> None:
    assert main(["compare", str(out / POINTS[0]), str(out / POINTS[1]),
                 "--out", str(tmp_path / "cmp")]) == 0
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert 'class="differs"><th>routers</th><td>2</td><td>3</td>' in page
    assert "independent-breaks" in page


def test_a_two_point_sweep_through_dask(scheduler, tmp_path):
    out = tmp_path / "sweep-dask"
    code = main(["sweep", EXP, "--quick", "--grid", "routers=2,3", "--out", str(out),
                 "--lab", "mig-sweep-it", "--scheduler", scheduler])
    state = _check_sweep(out, code, scheduler)
    assert all(p["where"] for p in state["points"])
    assert (out / POINTS[0] / "run.log").exists(), "the worker's lblab run output comes back"
    _compare_points(out, tmp_path)


def test_the_same_sweep_on_this_machine_then_resumed(tmp_path, capsys):
    out = tmp_path / "sweep-local"
    argv = ["sweep", EXP, "--quick", "--grid", "routers=2,3", "--out", str(out), "--lab",
            "mig-sweep-it"]
    code = main(argv)
    _check_sweep(out, code, None)
    _compare_points(out, tmp_path)
    stamps = [(out / p / EXP / "result.json").stat().st_mtime_ns for p in POINTS]
    t0 = time.monotonic()
    assert main([*argv, "--resume"]) == code
    assert time.monotonic() - t0 < 10, "a resumed sweep with every point complete runs nothing"
    assert [(out / p / EXP / "result.json").stat().st_mtime_ns for p in POINTS] == stamps
    state = json.loads((out / "sweep.json").read_text())
    assert [p["status"] for p in state["points"]] == ["kept", "kept"]


def test_a_point_past_its_time_limit_is_stopped_retried_once_and_the_rest_goes_on(
        scheduler, tmp_path, monkeypatch):
    from lblab import sweep

    planned = sweep.time_limit_s
    monkeypatch.setattr(sweep, "time_limit_s",
                        lambda p: 4.0 if p.name == "routers=3" else planned(p))
    out = tmp_path / "sweep-timeout"
    code = main(["sweep", EXP, "--quick", "--grid", "routers=3,2", "--out", str(out),
                 "--lab", "mig-sweep-it", "--scheduler", scheduler])
    state = json.loads((out / "sweep.json").read_text())
    by_name = {p["name"]: p for p in state["points"]}
    late, fine = by_name["routers=3"], by_name["routers=2"]
    assert (late["status"], late["attempts"], late["code"]) == ("failed", 2, 3), late
    assert "timed out" in late["message"]
    assert fine["status"] == "done", "the sweep went on after the failed point"
    assert code == 3
    assert not (out / "routers=3" / EXP / "result.json").exists()
    assert "timed out" in (out / "index.html").read_text()
    # the lab_home fixture then checks that the stopped runs left no lab behind
