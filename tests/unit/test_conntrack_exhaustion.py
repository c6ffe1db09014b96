"""conntrack-exhaustion's model, analysis and claims on synthetic raw data; its flood event
and its guards (headroom, routes) against fake labs."""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments.conntrack_exhaustion import EXPERIMENT
from experiments.conntrack_exhaustion import lab as ct_lab
from experiments.conntrack_exhaustion.model import (
    keepalive_open,
    offered,
    overlap_probability,
    predicted_entries,
    request_spacing_s,
)
from experiments.conntrack_exhaustion.params import Params
from lblab.errors import LabError
from lblab.lab import conntrack_headroom
from lblab.raw import Raw
from lblab.ready import wait_until
from lblab.report import predicted_text, report
from lblab.results import RunFolder
from lblab.timeline import Timeline

P = EXPERIMENT.quick()  # rate 150, TIME_WAIT 4 s (short 1 s), k 10, 8 sources, table 256
DURATION = P.time_wait_s + 1 + P.measure_s
GOOD = {"churn": 600.0, "short-timeout": 150.0, "keep-alive": 67.3, "spread": 200.0}


def samples(steady: float, established: float = 0.0, busiest: float | None = None) -> list:
    rows = []
    for i in range(int(DURATION / P.sample_s) + 1):
        t = i * P.sample_s
        fill = min(1.0, t / P.time_wait_s)
        rows.append({"t": t, "entries": round(steady * fill), "time_wait": round(
            (steady - established) * fill), "established": established,
            "max_node_entries": round((busiest or steady) * fill), "cpu_busy": 0.3})
    return rows


def records(n: int, ok: int, spacing: float, every: int = 1) -> list[dict]:
    """n requests, `ok` of them answered: the first ones, or every `every`-th."""
    good = {i for i in range(0, n, every)} if every > 1 else set(range(ok))
    return [{"id": i, "attempt": 0, "intended_s": (i + 1) * spacing,
             "done_s": (i + 1) * spacing + 0.01 if i in good else None,
             "latency_ms": 10.0 if i in good else None,
             "outcome": "ok" if i in good else "timeout"} for i in range(n)]


def nodes_doc(names: list[str], flows: int, drop: int = 0) -> dict:
    return {"before": {n: {"dispatched": 0, "conntrack": {"drop": 0, "early_drop": 0}}
                       for n in names},
            "after": {n: {"dispatched": flows // len(names),
                          "conntrack": {"drop": drop, "early_drop": 0}} for n in names}}


def raw(entries: dict | None = None, established: float = 7.3, objsize: int = 256,
        small_success: float | None = None, synproxy_peak: int = 50, small_skipped: str = "",
        only: tuple[str, ...] | None = None) -> Raw:
    entries = {**GOOD, **(entries or {})}
    n = int(P.rate * DURATION)
    tables, docs = {}, {}
    for name in ("churn", "short-timeout", "keep-alive", "spread"):
        ka = name == "keep-alive"
        tables[name] = {"samples": samples(entries[name], established if ka else 0,
                                           busiest=entries[name]),
                        "client-records": records(n, n, 1 / P.rate)}
        nodes = ["lb1", "lb2", "lb3"] if name == "spread" else ["lb1"]
        docs[name] = {"nodes": nodes_doc(nodes, n // P.keepalive_requests if ka else n),
                      "client-summary": {}}
    if small_skipped:
        docs["small-table"] = {"skipped": {"why": small_skipped}}
    else:
        tables["small-table"] = {"samples": samples(256),
                                 "client-records": records(
                                     n, int((small_success or 0) * n), 1 / P.rate,
                                     every=1 if small_success else 4)}
        docs["small-table"] = {"nodes": nodes_doc(["lb1"], n, drop=900),
                               "sysctl": {"path": "nf_conntrack_max", "old": "262144",
                                          "new": "256", "after": "262144"}}
    for name, peak in (("syn-flood", 100_000), ("synproxy", synproxy_peak)):
        tables[name] = {"samples": [{"t": t / 4, "entries": round(peak * min(1, t / 4))}
                                    for t in range(9)],
                        "client-records": records(100, 100, 0.02)}
        docs[name] = {"node": {"conntrack_before": {"early_drop": 0},
                               "conntrack_after": {"early_drop": 5000}, "counters": {},
                               "table_max": 262144},
                      "timeline": {"events": [{"what": "syn-flood", "fired": 0.01,
                                               "done": 2.02}], "problems": []}}
    if only:
        tables = {k: v for k, v in tables.items() if k in only}
        docs = {k: v for k, v in docs.items() if k in only}
    return Raw.of(tables, docs, lab={"kernel": {"slab_objsize": objsize,
                                                "conntrack_max": 262144,
                                                "conntrack_max_writable": True}})


def claims_of(data: Raw, p: Params = P) -> dict:
    return {c.id: c for c in EXPERIMENT.claims(p, EXPERIMENT.analyse(p, data))}


# -- the model, against hand-computed values ----------------------------------------------
def test_keepalive_open_connections_by_littles_law_on_lifetimes():
    # 8 sources at 150/s: a source gets a request every 8/150 s; a connection carries 10,
    # lives 9 x 53.3 ms + 5 ms = 0.485 s, and 15 open per second: 7.275 open.
    assert request_spacing_s(150, 8) == pytest.approx(8 / 150)
    assert keepalive_open(150, 10, 8, 0.005) == pytest.approx(15 * 0.485)
    assert keepalive_open(150, 10, 8, 0.005) == pytest.approx(8 * 9 / 10 + 150 * 0.005 / 10)
    assert predicted_entries(P, "keep-alive") == pytest.approx(60 + 7.275)
    # the run: --set rate=300 (quick otherwise): 120 closed + 7.35 open
    assert predicted_entries(replace(P, rate=300), "keep-alive") == pytest.approx(127.35)


def test_other_predictions_and_the_schedule():
    assert predicted_entries(P, "churn") == 600
    assert predicted_entries(P, "short-timeout") == 150
    assert predicted_entries(P, "spread") == 200
    assert request_spacing_s(100, 8, 3) == pytest.approx(0.24)  # every lcm(3, 8)-th request
    assert overlap_probability(0.04, 0.005) == pytest.approx(math.exp(-8))
    assert overlap_probability(0.04, 0.0) == 0.0
    assert offered(150, 7.5) == 1124  # i / rate for i = 1.. while below 7.5 s


# -- every claim holds on good data, and fails when its failure is in the data ------------
def test_all_claims_hold_when_the_data_behaves():
    got = claims_of(raw())
    assert {c: x.holds for c, x in got.items()} == dict.fromkeys(got, True)
    assert set(got) == {"bytes-per-flow", "littles-law-churn", "short-timeout", "keep-alive",
                        "spread", "synproxy", "small-table"}


@pytest.mark.parametrize(("data", "failing"), [
    ({"objsize": 600}, "bytes-per-flow"),
    ({"objsize": 150}, "bytes-per-flow"),
    ({"entries": {"churn": 480}}, "littles-law-churn"),         # port reuse: too few entries
    ({"entries": {"short-timeout": 300}}, "short-timeout"),     # the timeout did not apply
    ({"entries": {"keep-alive": 90}}, "keep-alive"),
    ({"entries": {"spread": 260}}, "spread"),
    ({"synproxy_peak": 5000}, "synproxy"),
    ({"small_success": 0.8}, "small-table"),                    # admitted without a slot
])
def test_each_claim_fails_when_its_failure_is_in_the_data(data, failing):
    got = claims_of(raw(**data))
    assert got[failing].holds is False
    assert all(c.holds for k, c in got.items() if k != failing), \
        {k: c.verdict for k, c in got.items()}


def test_the_keepalive_prediction_contains_no_measurement():
    # Before: prediction = rate / k x TIME_WAIT + measured ESTABLISHED, so it always equalled
    # the measurement (128.5 / 128.5 at rate=300). Now the same whatever was measured.
    p300 = replace(P, rate=300)
    for established, total in ((8.5, 128.5), (30.0, 150.0), (0.0, 120.0)):
        c = claims_of(raw({"keep-alive": total}, established=established), p300)
        assert c["keep-alive"].predicted == pytest.approx(127.35)
    assert not claims_of(raw({"keep-alive": 150.0}, established=30.0), p300)["keep-alive"].holds


def test_the_notes_say_when_sources_hold_two_connections():
    # one source at 150/s: 6.7 ms between requests, 5 ms mean service: they overlap often
    one = replace(P, client_addresses=1)
    notes = EXPERIMENT.notes(one, EXPERIMENT.analyse(one, raw()))
    assert any("That is above the model's limit" in n for n in notes)
    assert not any("model's limit" in n for n in EXPERIMENT.notes(P, EXPERIMENT.analyse(
        P, raw())))


def test_bytes_per_flow_is_the_notes_range_not_a_percentage():
    c = claims_of(raw())["bytes-per-flow"]
    assert (c.comparison, c.predicted, c.upper, c.measured) == ("between", 200, 500, 256)
    assert predicted_text(c.to_json()) == "200-500" and c.tolerance_text == "in [200, 500]"


# -- small-table: skipped with its reason, never absent -----------------------------------
WHY = "nf_conntrack_max is not writable here (only root in the initial network namespace " \
      "may change it)"


def test_small_table_not_writable_is_a_skipped_claim_in_result_and_report(tmp_path):
    a = EXPERIMENT.analyse(P, raw(small_skipped=WHY))
    claims = {c.id: c for c in EXPERIMENT.claims(P, a)}
    assert claims["small-table"].skipped == WHY
    assert claims["small-table"].to_json()["verdict"] == f"skipped: {WHY}"
    assert any(n.startswith("small-table skipped: nf_conntrack_max") for n in
               EXPERIMENT.notes(P, a))
    folder = RunFolder(tmp_path, EXPERIMENT.name)
    folder.begin()
    folder.finish({"experiment": EXPERIMENT.name, "title": "T", "summary": "S",
                   "params": {}, "environment": {"git": {"commit": "abc", "dirty": False},
                                                 "kernel": "k", "datapath": "user",
                                                 "sysctls_changed": [], "argv": ["lblab"],
                                                 "capabilities": {"tools": {}}},
                   "variants": a.variants, "claims": [c.to_json() for c in claims.values()],
                   "notes": [], "topology": {"nodes": [], "links": []},
                   "measurement_problems": {}, "repeat": 1, "schema": 2, "seed": 1,
                   "plan": [], "duration_s": 1.0, "analysis": a.summary})
    page = report(tmp_path).read_text()
    assert "small-table" in page and "skipped: nf_conntrack_max is not writable" in page


def test_small_table_skipped_when_not_planned_or_left_out():
    assert claims_of(raw(), replace(P, small_table=0))["small-table"].skipped == \
        "small_table=0: the phase is not planned"
    left_out = claims_of(raw(only=("churn",)))
    assert left_out["small-table"].skipped == "needs variant small-table (not run)"
    assert left_out["synproxy"].skipped and left_out["keep-alive"].skipped
    assert left_out["littles-law-churn"].holds


class FakeRun:
    def __init__(self) -> None:
        self.docs: dict = {}

    def step(self, _message: str) -> None: ...

    def write_doc(self, name: str, data: dict) -> None:
        self.docs[name] = data

    def timeline(self) -> None:
        raise AssertionError("a skipped small table must not run the client")


class FakeNode:
    def __init__(self, name: str, count: int) -> None:
        self.cfg = SimpleNamespace(name=name)
        self.count = count

    def conntrack_count(self) -> int:
        return self.count


def fake_env(writable: bool = True, counts: tuple[int, ...] = (0, 0, 0)) -> ct_lab.Env:
    lab = SimpleNamespace(caps=SimpleNamespace(conntrack_max_writable=writable))
    return ct_lab.Env(lab, [FakeNode(f"lb{i + 1}", c) for i, c in enumerate(counts)], ())


def test_measure_writes_the_reason_when_the_table_cannot_be_lowered():
    run = FakeRun()
    ct_lab._small_table(fake_env(writable=False), P, run)
    assert run.docs == {"skipped": {"why": WHY}}
    got = claims_of(Raw.of(docs={"small-table": run.docs}))
    assert got["small-table"].skipped == WHY


def test_headroom_refuses_a_table_smaller_than_twice_what_is_tracked(monkeypatch):
    assert ct_lab.small_table_refusal(fake_env(), 256) is None
    refused = ct_lab.small_table_refusal(fake_env(counts=(0, 200, 0)), 256)
    assert refused.startswith("in node lb2's namespace, the machine tracks 200 connections")
    real = conntrack_headroom
    monkeypatch.setattr(ct_lab, "conntrack_headroom",
                        lambda new, count=None: real(new, 3000 if count is None else count))
    assert "tracks 3000 connections now" in ct_lab.small_table_refusal(fake_env(), 4096)
    run = FakeRun()
    ct_lab._small_table(fake_env(), replace(P, small_table=4096), run)
    assert "tracks 3000 connections" in run.docs["skipped"]["why"]


# -- the flood: a failing flood fails the variant -----------------------------------------
class FloodLab:
    """hping3 either exits at once with `code`, raises when spawned, or runs out its bound."""

    name = "fake"

    def __init__(self, code: int | None = 1, raises: bool = False) -> None:
        self.code, self.raises, self.stopped = code, raises, []
        self.folder = Path(tempfile.mkdtemp(prefix="floodlab-"))

    def addresses(self) -> set[str]:
        return {"10.1.1.1"}

    def file(self, name: str) -> Path:
        return self.folder / name

    def run(self, node, argv, *, check=True):
        """nft in the flooder: the count bound's ruleset, its `sent` counter (nothing sent)."""
        return json.dumps({"nftables": [{"counter": {"name": "sent", "packets": 0}}]})

    def spawn(self, node, argv, *, name):
        if self.raises:
            raise FileNotFoundError("hping3")
        lab = self

        class Proc:
            def poll(self):
                return lab.code

            def wait(self, timeout):
                if lab.code is None:
                    raise subprocess.TimeoutExpired(argv, timeout)
                return lab.code

        return Proc()

    def stop_process(self, proc) -> None:
        self.stopped.append(proc)


def timeline_problems(lab: FloodLab, tmp_path: Path) -> list[str]:
    tl = Timeline(tmp_path / "start")
    tl.at(0.0, "syn-flood", ct_lab.flood_event(lab, replace(P, flood_s=1.0)))
    tl.start()
    (tmp_path / "start").write_text(repr(time.time()))
    wait_until(lambda: tl.events[0].done is not None, timeout=5, what="the flood event")
    return tl.close()["problems"]


@pytest.mark.parametrize(("lab", "message"), [
    (FloodLab(code=1), "hping3 in c2 ended after"),
    (FloodLab(raises=True), "FileNotFoundError: hping3"),
])
def test_a_flood_that_fails_is_a_problem_of_the_measurement(tmp_path, lab, message):
    problems = timeline_problems(lab, tmp_path)
    assert len(problems) == 1 and problems[0].startswith("syn-flood: failed:")
    assert message in problems[0]


def test_a_flood_that_runs_its_bound_is_no_problem(tmp_path):
    lab = FloodLab(code=None)
    assert timeline_problems(lab, tmp_path) == []
    assert lab.stopped


def test_hping3_is_a_declared_need():
    assert "hping3" in EXPERIMENT.needs


# -- routes: the NAT phases stay on-link ---------------------------------------------------
class RouteLab:
    def __init__(self, nat_via: str | None = None) -> None:
        self.nat_via = nat_via

    def run(self, node, argv):
        dst = argv[4]
        flood = dst.startswith("10.1.1.") and node.startswith("c") or \
            dst.startswith("10.0.1.") and node.startswith("b")
        via = ("10.0.0.1" if node.startswith("c") else "10.1.0.1") if flood else self.nat_via
        return f"{dst} {'via ' + via + ' ' if via else ''}dev {node}-eth0 src x\\    cache\n"


def test_routes_are_checked_for_both_kinds_of_phase():
    rows = ct_lab.check_routes(RouteLab(), P)
    assert {r["via"] for r in rows if r["phase"] == "nat"} == {None}
    assert {r["via"] for r in rows if r["phase"] == "flood"} == {"10.0.0.1", "10.1.0.1"}
    with pytest.raises(LabError, match="the nat phases need it on-link"):
        ct_lab.check_routes(RouteLab(nat_via="10.0.0.1"), P)


# -- analysis details ----------------------------------------------------------------------
def test_analysis_reads_the_steady_window_and_the_counters():
    a = EXPERIMENT.analyse(P, raw())
    churn = a.variants["churn"]
    assert churn["steady_samples"] == 4 and churn["steady_window_s"] == [5, 7.0]
    assert churn["steady_entries"] == 600 and churn["predicted_entries"] == 600
    assert a.variants["keep-alive"]["reuse_factor"] == pytest.approx(10, rel=0.01)
    st = a.variants["small-table"]
    assert st["offered"] == 1124 and st["admission_bound"] == 737
    assert st["conntrack_max_after"] == st["conntrack_max_before"] == 262144
    admitted = [r["admitted"] for r in a.series["small-table-admissions"]]
    assert admitted == sorted(admitted) and admitted[-1] == st["ok_total"]
    assert a.variants["syn-flood"]["flood_s"] == pytest.approx(2.01)
    assert a.variants["syn-flood"]["fill_rate_per_s"] == pytest.approx(100_000)
    assert {r["variant"] for r in a.series["occupancy"]} == {
        "churn", "short-timeout", "keep-alive", "spread", "small-table", "syn-flood",
        "synproxy"}


def test_slots_freed_before_time_wait_are_measured_and_explained():
    spread = EXPERIMENT.analyse(P, raw())  # every 4th answered: 75 by 2 s, under 256 slots
    assert spread.variants["small-table"]["slot_bound_excess"] <= 0
    assert spread.variants["small-table"]["slot_bound_exceeded_at_s"] is None
    # the first 300 answered by 2 s: no slot can have expired (TIME_WAIT 4 s), yet 300 > 256
    front = EXPERIMENT.analyse(P, raw(small_success=0.267))
    st = front.variants["small-table"]
    assert (st["slot_bound_excess"], st["slot_bound_exceeded_at_s"]) == (44, 2.0)
    assert claims_of(raw(small_success=0.267))["small-table"].holds  # 0.267 <= 0.656
    assert any("the kernel freed slots early" in n for n in EXPERIMENT.notes(P, front))
    assert not any("freed slots early" in n for n in EXPERIMENT.notes(P, spread))
