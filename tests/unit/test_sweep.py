"""`lblab sweep` without a lab: grid planning and validation, point folder names, resume,
the Dask task's tar, the ETA, and the sweep report from synthetic result.json files."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from lblab import sweep
from lblab.cli import main
from lblab.results import RUNNING, write_json
from tests.unit.test_cli import _everything
from tests.unit.test_report_browser import CHROMIUM, check_in_browser
from tests.unit.test_results_report import fake_result

EXP = "asymmetric-routing"

BAD = [
    (["sweep", EXP], "needs at least one --grid KEY=V1,V2"),
    (["sweep", EXP, "--grid", "routers="], "--grid routers=: no values"),
    (["sweep", EXP, "--grid", "routers=,"], "--grid routers=,: no values"),
    (["sweep", EXP, "--grid", "noequals"], "--grid expects KEY=V1,V2,..., got 'noequals'"),
    (["sweep", EXP, "--grid", "=2,3"], "--grid expects KEY=V1,V2,..., got '=2,3'"),
    (["sweep", EXP, "--grid", "bogus=1,2"], "unknown parameter 'bogus'"),
    (["sweep", EXP, "--grid", "router=2,3"], "did you mean routers?"),
    (["sweep", EXP, "--grid", "routers=2,x"], "routers expects int, got 'x'"),
    (["sweep", EXP, "--grid", "routers=2,9"], "routers=9 is above the maximum 8"),
    (["sweep", EXP, "--grid", "rate=100,100.0"], "--grid rate: the value 100 is given twice"),
    (["sweep", EXP, "--grid", "routers=2", "--grid", "routers=3"], "--grid routers: given twice"),
    (["sweep", EXP, "--grid", "routers=2,3", "--set", "routers=4"], "also given with --set"),
    (["sweep", EXP, "--grid", "routers=2,3", "--set", "bogus=1"], "unknown parameter 'bogus'"),
    (["sweep", "ecmp-rehash", "--grid", "lbs=2,3", "--set", "remove_index=3"],
     "remove_index 3 is above lbs 2"),
    (["sweep", "all", "--grid", "routers=2,3"], "takes one experiment, not all"),
    (["sweep", "nope", "--grid", "routers=2,3"], "unknown experiment 'nope'"),
    (["sweep", EXP, "--grid", "routers=2,3", "--repeat", "0"], "--repeat 0: use 1 to 50"),
    (["sweep", EXP, "--grid", "routers=2,3", "--lab", "bad name"], "lab name 'bad name'"),
    (["sweep", EXP, "--grid", "routers=2,3", "--out", "afile"], "exists and is not a folder"),
    (["sweep", EXP, "--grid", "routers=2,3", "--out", "/proc/x"], "not a place for results"),
    (["sweep", EXP, "--grid", "routers=2,3", "--out", "foreign"],
     "holds notes.txt, which is not an lblab point's"),
    (["sweep", EXP, "--grid", "routers=2,3", "--scheduler", "localhost:8786"],
     "use tcp://HOST:PORT"),
    (["sweep", EXP, "--grid", "routers=2,3", "--scheduler", "tcp://127.0.0.1:9"],
     "no scheduler answers there"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a[1:]) for a, _ in BAD])
def test_bad_sweep_input_exits_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep, "connect", _fast_connect)
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "foreign" / "routers=2").mkdir(parents=True)
    (tmp_path / "foreign" / "routers=2" / "notes.txt").write_text("mine")
    before = _everything(tmp_path)

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert err.startswith("lblab: error:")
    assert len(err.splitlines()) == 1, err
    assert _everything(tmp_path) == before, "bad input left something behind"


_real_connect = sweep.connect


def _fast_connect(address, wait_s=10.0):
    return _real_connect(address, wait_s=1.0)


def test_a_scheduler_without_a_lab_worker_is_refused(capsys, tmp_path, monkeypatch):
    from distributed import LocalCluster

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep, "connect", _fast_connect)
    with LocalCluster(n_workers=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        code = main(["sweep", EXP, "--grid", "routers=2,3", "--out", "sw",
                     "--scheduler", cluster.scheduler_address])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "no worker offers the resource lab=1" in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_grid_is_the_cartesian_product_in_grid_order():
    plan = sweep.plan_sweep(EXP, ["routers=2,3", "rate=50,100.0"], ["backends=2"], quick=True)
    assert [p.name for p in plan.points] == [
        "routers=2,rate=50", "routers=2,rate=100", "routers=3,rate=50", "routers=3,rate=100"]
    last = plan.points[-1]
    assert last.params["routers"] == 3 and last.params["rate"] == 100.0
    assert last.params["backends"] == 2
    assert last.params["connections"] == 200, "--quick's values are the starting point"
    assert last.sets == ("backends=2", "routers=3", "rate=100")
    assert last.value("rate") == 100.0 and isinstance(last.value("routers"), int)
    assert plan.seconds == pytest.approx(sum(p.seconds for p in plan.points)) and plan.seconds > 0


def test_repeat_multiplies_a_points_declared_time():
    one = sweep.plan_sweep(EXP, ["routers=2"], [], quick=True)
    three = sweep.plan_sweep(EXP, ["routers=2"], [], quick=True, repeat=3)
    assert three.points[0].seconds == pytest.approx(3 * one.points[0].seconds)


def test_run_argv_is_the_points_lblab_run():
    plan = sweep.plan_sweep(EXP, ["routers=3"], ["rate=50"], quick=True, repeat=2, seed=7)
    argv = plan.run_argv(plan.points[0], "mig-x")
    assert argv[:2] == ["run", EXP] and argv[-1] == "--quick"
    pairs = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert pairs["--seed"] == "7" and pairs["--repeat"] == "2" and pairs["--lab"] == "mig-x"
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["rate=50", "routers=3"]


@pytest.mark.parametrize(("value", "text"), [
    (200.0, "200"), (0.1, "0.1"), (1e-05, "1e-05"), (2.5e20, "2.5e+20"), (3, "3"),
    (True, "true"), (False, "false"), ("l7:source", "l7:source"), (("a", "b"), "a,b"),
    ([0.5, 2.0], "0.5,2"),
])
def test_value_text_is_canonical(value, text):
    assert sweep.value_text(value) == text


def test_point_names_are_filesystem_safe_and_stable():
    name = sweep.point_name([("policy", "l7:a/b,c=d"), ("rate", "200")])
    assert name == "policy=l7%3Aa%2Fb%2Cc%3Dd,rate=200"
    assert "/" not in name and not name.startswith(".")
    assert sweep.point_name([("rate", "1e+05")]) == "rate=1e+05"
    long_a = sweep.point_name([("x", "a" * 300)])
    long_b = sweep.point_name([("x", "a" * 299 + "b")])
    assert len(long_a.encode()) <= sweep.NAME_MAX and long_a != long_b
    assert long_a == sweep.point_name([("x", "a" * 300)])


def _write(root, plan, point, *, seed=None, claims=None, **params):
    """A complete result.json of the point's run (as tests of the report make them)."""
    folder = fake_result(root / point.name, plan.experiment, 1.0,
                         params={**point.params, **params}, claims=claims)
    if seed is not None:
        result = json.loads((folder.dir / "result.json").read_text())
        write_json(folder.dir / "result.json", {**result, "seed": seed})


def test_resume_keeps_only_complete_results_of_the_same_run(tmp_path):
    plan = sweep.plan_sweep(EXP, ["routers=2,3,4,5,6"], [], quick=True)
    p2, p3, p4, p5, p6 = plan.points
    _write(tmp_path, plan, p2)
    _write(tmp_path, plan, p3)
    (tmp_path / p3.name / EXP / RUNNING).write_text("pid 1")  # interrupted
    _write(tmp_path, plan, p4, rate=55.0)  # another sweep's --set
    _write(tmp_path, plan, p5, seed=9)
    todo, kept = sweep.pending(plan, tmp_path, resume=True)
    assert kept == [p2]
    assert todo == [p3, p4, p5, p6]
    todo, kept = sweep.pending(plan, tmp_path, resume=False)
    assert kept == [] and todo == list(plan.points)


def test_an_lblab_point_folder_may_be_rerun_but_not_a_foreign_one(tmp_path):
    plan = sweep.plan_sweep(EXP, ["routers=2,3"], [], quick=True)
    (tmp_path / "routers=2" / EXP).mkdir(parents=True)
    (tmp_path / "routers=2" / "report.html").write_text("x")
    sweep.check_folders(plan, tmp_path)
    (tmp_path / "routers=3").mkdir()
    (tmp_path / "routers=3" / "data.csv").write_text("x")
    with pytest.raises(sweep.UsageError, match="routers=3 holds data.csv"):
        sweep.check_folders(plan, tmp_path)


def test_conclude_says_done_or_failed_from_the_folder(tmp_path):
    plan = sweep.plan_sweep(EXP, ["routers=2,3"], [], quick=True)
    p2, p3 = plan.points
    _write(tmp_path, plan, p2, claims=[_claim("a", 1, 1, True)])
    write_json(tmp_path / p3.name / EXP / "error.json", {"error": "Traceback\nLabError: boom"})
    done = sweep.conclude(plan, p2, tmp_path, 0, 1, 12.0, "here")
    failed = sweep.conclude(plan, p3, tmp_path, 3, 1, 5.0, "here")
    assert (done.status, done.code, done.message) == ("done", 0, "")
    assert (tmp_path / p2.name / "report.html").exists()
    assert (failed.status, failed.code, failed.message) == ("failed", 3, "LabError: boom")
    assert sweep.conclude(plan, p3, tmp_path, 0, 1, 5.0, "here").code == 3


def test_a_failed_point_is_retried_once_and_the_sweep_goes_on(tmp_path):
    plan = sweep.plan_sweep(EXP, ["routers=2,3"], [], quick=True)
    tracker = sweep.Tracker(plan)
    progress = sweep.SweepProgress()
    first = sweep.Outcome("routers=2", "failed", 3, 1, 5.0, "", "boom")
    assert sweep._record(plan, tmp_path, plan.points[0], first, tracker, progress)
    assert "routers=2" not in tracker.outcomes
    second = sweep.Outcome("routers=2", "failed", 3, 2, 5.0, "", "boom")
    assert not sweep._record(plan, tmp_path, plan.points[0], second, tracker, progress)
    assert tracker.counts() == {"done": 0, "failed": 1, "kept": 0, "running": 0, "total": 2,
                                "queued": 1}
    assert tracker.exit_code() == 3
    state = json.loads((tmp_path / "sweep.json").read_text())
    assert [p["status"] for p in state["points"]] == ["failed", "pending"]


def test_eta_uses_the_measured_pace_and_the_lanes():
    plan = sweep.plan_sweep(EXP, ["routers=2,3,4,5"], [], quick=True)
    s = plan.points[0].seconds
    tracker = sweep.Tracker(plan)
    assert tracker.eta_s(now=0) == pytest.approx(plan.seconds)
    tracker.finish(sweep.Outcome(plan.points[0].name, "done", 0, 1, 2 * s))  # twice as slow
    assert tracker.eta_s(now=0) == pytest.approx(2 * (plan.seconds - s))
    tracker.start(plan.points[1].name, now=100.0)
    assert tracker.eta_s(now=100.0 + s) == pytest.approx(2 * (plan.seconds - s) - s)
    tracker.lanes = 2
    assert tracker.eta_s(now=100.0 + s) == pytest.approx((2 * (plan.seconds - s) - s) / 2)


def test_pack_and_unpack_replace_the_point_folder(tmp_path):
    src = tmp_path / "src"
    (src / EXP / "raw").mkdir(parents=True)
    (src / EXP / "raw" / "a.csv").write_text("x\n1\n")
    (src / "run.log").write_text("log")
    dest = tmp_path / "sweep" / "routers=2"
    (dest / "stale").mkdir(parents=True)
    sweep.unpack(sweep.pack(src), dest)
    assert (dest / EXP / "raw" / "a.csv").read_text() == "x\n1\n"
    assert (dest / "run.log").read_text() == "log"
    assert not (dest / "stale").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["routers=2"]


def test_unpack_writes_nothing_outside_the_point_folder(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("../escape.txt", "/abs.txt", "ok.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    dest = tmp_path / "sweep" / "p"
    sweep.unpack(buf.getvalue(), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["ok.txt"]
    assert not (tmp_path / "abs.txt").exists()
    assert not (tmp_path / "sweep" / "escape.txt").exists()


def test_run_point_bounds_the_run_and_returns_its_folder(monkeypatch):
    data = sweep.run_point(["--version-that-does-not-exist"], 30.0)
    assert data["code"] == 2 and not data["timed_out"]
    with tarfile.open(fileobj=io.BytesIO(data["tar"])) as tar:
        assert "run.log" in tar.getnames()
        assert b"lblab: error:" in tar.extractfile("run.log").read()


def test_run_point_stops_a_run_past_its_time_limit(monkeypatch):
    monkeypatch.setattr(sweep, "STOP_GRACE_S", 2.0)
    monkeypatch.setattr(sweep.subprocess, "Popen", _sleeper(sweep.subprocess.Popen))
    data = sweep.run_point(["run"], 1.0)
    assert data["timed_out"] and data["code"] != 0 and data["seconds"] < 10


def test_run_point_stops_when_the_sweep_is_stopped(monkeypatch):
    monkeypatch.setattr(sweep.subprocess, "Popen", _sleeper(sweep.subprocess.Popen))
    monkeypatch.setattr(sweep, "_stop_requested", lambda name: name == "stop-me")
    data = sweep.run_point(["run"], 600.0, "stop-me")
    assert not data["timed_out"] and data["code"] != 0 and data["seconds"] < 10


def _sleeper(popen):
    def start(_cmd, **kw):
        return popen(["sleep", "60"], **kw)

    return start


def _claim(cid, predicted, measured, holds):
    """A claim row as an experiment writes it: within ±10 % of the prediction."""
    from lblab.claims import within

    row = within(cid, f"{cid} statement", predicted, measured, 0.1).to_json()
    assert row["holds"] == holds, "the synthetic claim's verdict is not the intended one"
    return row


def _synthetic_sweep(root):
    plan = sweep.plan_sweep(EXP, ["routers=2,3,4", "rate=50,100"], [], quick=True)
    tracker = sweep.Tracker(plan)
    for i, p in enumerate(plan.points):
        if p.name == "routers=4,rate=100":
            tracker.finish(sweep.Outcome(p.name, "failed", 3, 2, 1.0, "", "boom"))
            continue
        n = p.value("routers")
        broken = (n - 1) / n
        claims = [_claim("broken-independent", broken, broken + (0.2 if n == 3 else 0.01),
                         n != 3),
                  _claim("none-symmetric", 0, 0.05, True)]
        if i == 0:
            claims.append(_claim("only-here", 1, 1, True))
        _write(root, plan, p, claims=claims)
        tracker.finish(sweep.Outcome(p.name, "done", 0 if n != 3 else 1, 1, 20.0, "h"))
    sweep.write_state(plan, root, tracker)
    return plan


def test_report_data_has_every_claim_against_the_first_swept_parameter(tmp_path):
    _synthetic_sweep(tmp_path)
    data = sweep.report_data(tmp_path)
    assert data["x"] == "routers" and data["series_keys"] == ["rate"]
    by_id = {c["id"]: c for c in data["claims"]}
    assert list(by_id) == ["broken-independent", "none-symmetric", "only-here"]
    rows = by_id["broken-independent"]["rows"]
    assert [(r["x"], r["series"]) for r in rows] == [
        (2, "rate=50"), (2, "rate=100"), (3, "rate=50"), (3, "rate=100"), (4, "rate=50"),
        (4, "rate=100")]
    assert [r["status"] for r in rows] == ["holds", "holds", "fails", "fails", "holds",
                                           "missing"]
    assert rows[2]["claim"]["predicted"] == pytest.approx(2 / 3)
    assert by_id["broken-independent"]["holding"] == 3
    assert by_id["only-here"]["holding"] == 1 and by_id["only-here"]["counted"] == 6
    points = {p["name"]: p for p in data["points"]}
    assert points["routers=4,rate=100"]["status"] == "failed"
    assert not points["routers=4,rate=100"]["complete"]
    assert points["routers=2,rate=50"]["href"] == "routers%3D2%2Crate%3D50/report.html"


def test_write_report_draws_a_plot_per_claim_and_links_the_points(tmp_path):
    _synthetic_sweep(tmp_path)
    page = sweep.write_report(tmp_path)
    html = page.read_text()
    for cid in ("broken-independent", "none-symmetric", "only-here"):
        assert (tmp_path / "claims" / f"{cid}.png").stat().st_size > 1000
        assert f'src="claims/{cid}.png"' in html
    assert 'href="routers%3D3%2Crate%3D50/report.html"' in html
    assert "rate=50,100</code>" in html and "<td>100</td>" in html, "values as --set takes them"
    assert "absent from its result" in html and "no result" in html
    assert "routers%3D4%2Crate%3D100/report.html" not in html, "no link to a failed point"
    state = json.loads((tmp_path / "sweep.json").read_text())
    claim = next(c for c in state["claims"] if c["id"] == "broken-independent")
    assert [p["status"] for p in claim["points"]][:3] == ["holds", "holds", "fails"]


def test_report_refuses_a_folder_without_a_sweep(tmp_path):
    with pytest.raises(sweep.UsageError, match="no sweep.json"):
        sweep.report_data(tmp_path)


def test_compare_works_between_two_points(tmp_path):
    from lblab.report import compare

    _synthetic_sweep(tmp_path)
    page = compare(tmp_path / "routers=2,rate=50", tmp_path / "routers=3,rate=50",
                   tmp_path / "cmp")
    html = page.read_text()
    assert "broken-independent" in html and "does not hold" in html
    assert 'class="differs"><th>routers</th><td>2</td><td>3</td>' in html


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (scripts/provision.sh installs it)")
def test_the_sweep_index_loads_every_plot_in_a_browser(tmp_path):
    _synthetic_sweep(tmp_path / "sw")
    page = sweep.write_report(tmp_path / "sw")
    seen = check_in_browser(page, tmp_path)
    assert seen["images"] == 3 and not seen["broken"], seen
    assert not seen["console"], seen["console"]
