"""The driver end to end on a real lab: one clock for client, samples and faults; repeats
that cannot hide a miss; plots redrawn from the folder alone.

The experiment here is a test fixture: one client, one backend on one switch. At t1 (on the
client's measured clock) the backend's service time goes from 5 to 300 ms. Its claim is the
user's check of the clock: requests sent before t1 are fast and requests sent after it are
slow. A second claim fails on purpose in one repetition only (a fixture knob), so a miss
in one repetition must make the whole run exit 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from mininet.topo import SingleSwitchTopo

from lblab import claims as C
from lblab import metrics as M
from lblab.cli import main
from lblab.driver import (
    Analysis,
    Experiment,
    LabPlan,
    RunOptions,
    VariantPlan,
    run_experiment,
)
from lblab.params import param
from lblab.timeline import event_time
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import start_backend

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class ToyParams:
    t1: float = param(1.5, "slowdown at (s)")
    end: float = param(3.0, "load for (s)")
    fail_in_rep: int = param(0, "seed at which the fixture claim fails (0: never)")


class Toy(Experiment):
    name, title, summary = "toy", "driver fixture", "one client, one backend, a slowdown"
    Params = ToyParams
    bring_up_s = 3.0

    def variants(self, p):
        return [VariantPlan("only", p.end)]

    def lab(self, p, key):
        return LabPlan(SingleSwitchTopo(2), roles={"h": "client", "s": "switch-front"})

    def setup(self, lab, p, rep):
        return start_backend(lab, "h2", "10.0.0.2", port=8080, service_ms=5,
                             service_dist="constant", workers=64)

    def measure(self, backend, p, v, run):
        run.timeline().at(p.t1, "slow", lambda: backend.set_faults(service_ms=300),
                          slack_s=0.2)
        with run.sample(lambda: {"arrived": backend.stats()["capacity"]["arrived"]}, 0.1):
            run.client("h1", ClientConfig(targets=["http://10.0.0.2:8080/"], rate=40,
                                          duration_s=p.end, arrival="constant",
                                          timeout_s=2, seed=run.seed))
        run.write_doc("seed", {"seed": run.seed})

    def analyse(self, p, raw):
        data = raw["only"]
        t1 = event_time(data.doc("timeline"), "slow")
        reqs = M.requests(data.table("client-records"))
        # a request is slow if it reaches the backend after t1: leave one RTT of margin
        before = M.ok_latencies(M.window(reqs, 0, t1 - 0.05))
        after = M.ok_latencies(M.window(reqs, t1 + 0.05, p.end))
        return Analysis({"only": {
            "t1_fired": t1, "p99_before": M.latency_p(before, 99),
            "p1_after": M.quantile(after, 0.01), "seed": data.doc("seed")["seed"],
            "samples": len(data.table("samples"))}})

    def claims(self, p, a):
        m = a.variants["only"]
        return [C.at_most("fast-before-t1", "p99 before the slowdown (ms)", 100,
                          m["p99_before"]),
                C.at_least("slow-after-t1", "fastest request after it (ms)", 290,
                           m["p1_after"]),
                C.at_most("fixture", "fails when seed == fail_in_rep", 0,
                          1.0 if m["seed"] == p.fail_in_rep else 0.0)]

    def plot(self, folder, result):
        from lblab import plots

        fig, ax = plots.figure()
        ax.bar([0], [result["variants"]["only"]["p1_after"]])
        return [plots.save(fig, folder / "toy.png")]


def run_toy(tmp_path: Path, repeat: int, **params) -> tuple[bool, dict]:
    ok = run_experiment(Toy(), ToyParams(**params), tmp_path,
                        RunOptions(seed=1, repeat=repeat, lab_name="it-driver"))
    return ok, json.loads((tmp_path / "toy" / "result.json").read_text())


def test_faults_samples_and_records_share_the_clients_clock(tmp_path):
    ok, result = run_toy(tmp_path, 1)
    assert ok, result["claims"]
    m = result["variants"]["only"]
    assert m["t1_fired"] == pytest.approx(1.5, abs=0.2)
    assert m["samples"] > 10
    timeline = json.loads((tmp_path / "toy" / "raw" / "only" / "timeline.json").read_text())
    assert timeline["client_boot_s"] > 0 and not timeline["problems"]
    assert result["schema"] == 2 and result["plan"][0]["name"] == "only"
    t = result["timing"]
    # Where the wall time went adds up to no more than the wall time, and the measurement
    # took at least the client's declared duration.
    assert t["measure_s"]["only"] >= ToyParams().end
    parts = t["bring_up_s"] + t["setup_s"] + t["prepare_s"] + t["measure_s"]["only"] + \
        t["teardown_s"] + t["conclude_s"]
    assert t["bring_up_s"] > 0 and t["teardown_s"] > 0
    assert parts <= result["duration_s"] + 0.5


def test_one_missed_repetition_fails_the_run_and_the_report_shows_both(tmp_path, capsys):
    ok, result = run_toy(tmp_path, 2, fail_in_rep=2)  # seeds 1 and 2: rep 2 misses
    assert not ok
    rows = {c["id"]: c for c in result["claims"]}
    assert rows["fixture"]["runs_holding"] == 1 and not rows["fixture"]["holds"]
    assert rows["slow-after-t1"]["runs_holding"] == 2 and rows["slow-after-t1"]["holds"]
    assert [r["ok"] for r in result["repetitions"]] == [True, False]
    folder = tmp_path / "toy"
    assert (folder / "claims-repeats.png").exists()
    assert (folder / "rep-1" / "toy.png").exists() and (folder / "rep-2" / "toy.png").exists()


def test_plot_redraws_every_figure_from_the_folder_alone(tmp_path, monkeypatch):
    monkeypatch.setattr("lblab.catalogue.load", lambda name: Toy())
    run_toy(tmp_path, 2)
    pngs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    for p in tmp_path.rglob("*.png"):
        p.unlink()
    assert main(["plot", str(tmp_path)]) == 0
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png")) == pngs


def test_up_brings_any_experiments_lab_up_as_a_variant_and_tears_it_down(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "lblab.cli", "up", "asymmetric-routing",
                           "--variant", "symmetric", "--quick", "--lab", "it-up"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lab up as variant symmetric" in done.stdout
    assert "controller API: http://127.0.0.1:" in done.stdout


def test_keep_lab_on_failure_stops_in_the_cli_with_the_lab_up(tmp_path, monkeypatch, capsys):
    import io

    seen = {}

    def cli_sees_the_lab(net, stdin):
        seen["hosts"] = [h.name for h in net.hosts]
        seen["answers"] = net["h1"].cmd("curl -s -o /dev/null -w %{http_code} "
                                        "http://10.0.0.2:8080/")
        assert stdin.read() == ""  # the user typed nothing: exit, tear down

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setattr("mininet.cli.CLI", cli_sees_the_lab)
    ok = run_experiment(Toy(), ToyParams(fail_in_rep=1), tmp_path,
                        RunOptions(seed=1, lab_name="it-keep", keep_lab_on_failure=True))
    assert not ok
    assert seen["hosts"] == ["h1", "h2"] and seen["answers"] == "200"
    assert "fixture did not hold; the lab is kept up" in capsys.readouterr().err
