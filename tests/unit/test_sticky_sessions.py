"""sticky-sessions' models, analysis and claims on synthetic raw data: a small simulation of
the users (sessions with exponential lifetimes, one cart each), of HAProxy's cookie
affinity (new sessions round robin over the servers it holds UP) and of the faults, written
as the experiment writes its raw data. Each claim holds on well-behaved data and does not
hold when its failure is put into the data."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from experiments.sticky_sessions import EXPERIMENT, model
from experiments.sticky_sessions.analysis import backend_at, census, sessions
from experiments.sticky_sessions.claims import recovery_deviation
from experiments.sticky_sessions.params import BACK, DRAIN, FAIL, STOP, WITHDRAW, Params, quick
from lblab.errors import UsageError
from lblab.raw import Raw, read_table
from lblab.workloads.users import activity, cart_lost

P = quick()  # N 10, U 300, think 1 s, tau 4 s, fail 2.5 s, back 4 s, drain 3 s, checks 200 ms
SEED = 1


def simulate(p: Params, name: str, *, detect_s: float = 0.3, lose_elsewhere: int = 0,
             failures: int = 0, no_drain: bool = False, never_back: bool = False,
             lose_on_drain: bool = False, replicated: bool | None = None,
             move_survivors: int = 0,
             placement: str = "", seed: int = SEED) -> dict:
    """One variant's raw data (tables, docs)."""
    s = p.setting(name)
    rng = random.Random(seed)
    servers = [f"b{i}" for i in range(1, p.backends + 1)]
    failed = f"b{p.failed}"
    t0, t_stop = p.t_fail, p.t_fail + p.drain_s
    t_back = p.t_back if BACK in s.faults else math.inf
    t_up = math.inf if never_back else t_back + 0.5
    gone_at = t_stop if DRAIN in s.faults else (t0 if FAIL in s.faults else math.inf)
    keeps = s.store == "redis"
    anycast = s.tier == "anycast"
    replicated = s.peers if replicated is None else replicated
    t_withdraw = t0 if WITHDRAW in s.faults else math.inf
    placement = placement or ("affinity" if s.cookie or anycast else "per-request")
    pick_rng = random.Random(seed + 1)

    def pick(t: float) -> str:
        live = [b for b in servers if b != failed or not (
            gone_at <= t < t_up or (DRAIN in s.faults and t >= t0 and not no_drain))]
        return pick_rng.choice(live)  # HAProxy rotates; a random pick is the looser case

    weights = activity(p.users, s.alpha, seed)
    rows, served = [], dict.fromkeys(servers, 0)
    for slot in range(p.users):
        gap = p.think_s / weights[slot]
        due, k = rng.uniform(0, gap), 0
        while due < s.seconds:
            ends = due + (rng.expovariate(1 / s.tau_s) if s.tau_s else math.inf)
            sid, seq, confirmed, items, lost, backend = slot * 100_000 + k, 0, 0, 0, False, None
            wiped, via = False, rng.choice(["10.1.0.1", "10.1.0.2"]) if anycast else "10.1.0.1"
            times = []
            while due < min(ends, s.seconds):
                times.append(("add", due))
                due += rng.expovariate(1 / gap) if s.alpha else gap
            times.append(("checkout" if ends <= s.seconds else "final", min(ends, s.seconds)))
            for kind, t in times:
                if placement == "per-request":
                    backend = pick(t)
                elif backend is None:
                    backend = pick(t)
                elif via == "10.1.0.1" and anycast and t >= t_withdraw:
                    via = "10.1.0.2"  # the survivor: it knows the session only if replicated
                    if not replicated:
                        moved = pick(t)
                        backend, items = moved, (items if moved == backend else 0)
                elif backend == failed and gone_at <= t < t_up:
                    backend, items = pick(t), items if keeps else 0
                elif backend == failed and lose_on_drain and t0 <= t and not wiped:
                    items, wiped = 0, True  # a drain that restarts the backend at once
                items += kind == "add"
                was_lost = cart_lost(items, confirmed, kind == "add")
                lost = lost or was_lost
                served[backend] += 1
                rows.append({"session": sid, "slot": slot, "seq": seq, "kind": kind,
                             "sent_s": t, "done_s": t + 0.002, "latency_ms": 2.0,
                             "status": 200, "outcome": "ok", "backend": backend, "via": via,
                             "items": items, "confirmed": confirmed, "lost": was_lost})
                confirmed += kind == "add"
                seq += 1
            k += 1
            due = ends
    started = {}
    for r in rows:
        started.setdefault(r["session"], r["sent_s"])
        if r["backend"] == failed:
            started[r["session"]] = math.inf  # never on the failed backend: the others
    extra_lost = [r for r in rows if r["kind"] != "add"
                  and started[r["session"]] < t0 < r["sent_s"]]  # active at the failure
    for r in extra_lost[:lose_elsewhere]:
        r["lost"] = True
    survivors = [r for r in rows if r["via"] == "10.1.0.2" and r["sent_s"] > t0
                 and started[r["session"]] < t0 and r["seq"] > 1]
    for r in survivors[:move_survivors]:
        r["backend"] = "b2" if r["backend"] != "b2" else "b3"
    after = [r for r in rows if r["sent_s"] >= t0]
    for r in after[:failures]:
        r.update(outcome="5xx", status=503, items=None)
    samples, cum = [], dict.fromkeys(servers, 0)
    ordered = sorted(rows, key=lambda r: r["done_s"])
    i, t = 0, 0.0
    while t <= s.seconds + 0.2:
        while i < len(ordered) and ordered[i]["done_s"] <= t:
            cum[ordered[i]["backend"]] += 1
            i += 1
        row = {"t": round(t, 3)}
        for b in servers:
            down = b == failed and gone_at + detect_s <= t < t_up
            row[f"{b}.ok"], row[f"{b}.status"] = cum[b], "DOWN" if down else "UP"
        samples.append(row)
        t += p.sample_s
    events = [{"what": w, "fired": at} for w, at in
              ((FAIL, t0), (BACK, t_back), (DRAIN, t0), (STOP, t_stop), (WITHDRAW, t0))
              if w in s.faults]
    docs = {"timeline": {"events": events, "problems": []},
            "users-summary": {"config": {"duration_s": s.seconds, "seed": seed}},
            "haproxy-after": {b: {"hrsp_2xx": n} for b, n in served.items()},
            "lb-nodes": {"lb1": "10.1.0.1", "lb2": "10.1.0.2"}}
    return {"tables": {"users-records": rows, "haproxy": samples}, "docs": docs}


def run(p: Params = P, **per_variant: dict) -> dict:
    """Analyse and judge every variant of p; per_variant: simulate() options by variant."""
    data = {n: simulate(p, n, **per_variant.get(n, {})) for n in p.variants}
    raw = Raw.of({n: d["tables"] for n, d in data.items()}, {n: d["docs"] for n, d in
                                                            data.items()})
    a = EXPERIMENT.analyse(p, raw)
    return {c.id: c for c in EXPERIMENT.claims(p, a)} | {"_analysis": a}


@pytest.fixture(scope="module")
def good():
    return run()


# -- models against hand-computed values --------------------------------------------------
def test_predictions_by_hand():
    assert model.lost_share(P) == 0.1
    assert model.drain_lost_share(P) == pytest.approx(0.1 * math.exp(-3 / 4))  # 0.04724
    assert model.recovery_share(P, 4.0) == pytest.approx(0.1 * (1 - math.exp(-1)))  # 0.0632
    assert model.recovery_share(P, -1.0) == 0.0
    assert P.detection_bound_s == pytest.approx(2 * 0.2 + 0.1)
    assert model.failed_requests_bound(P) == pytest.approx(300 / 1 / 10 * 0.5)  # 15
    assert model.affinity_lost_share(P, peers=False) == pytest.approx(0.5 * 0.9)
    assert model.affinity_lost_share(P, peers=True) == 0.0


def test_activity_weights_mean_one_and_heavy_tailed():
    assert activity(5, 0, 3) == [1.0] * 5
    w = activity(300, 1.3, 1)
    assert sum(w) / 300 == pytest.approx(1.0)
    assert w == activity(300, 1.3, 1) and w != activity(300, 1.3, 2)
    top = sorted(w, reverse=True)[:15]
    assert sum(top) / sum(w) > 0.25  # 5 % of the users send over a quarter of the requests


def test_cart_lost_rule():
    assert cart_lost(1, 1, adding=True)           # the add's own item is missing
    assert not cart_lost(2, 1, adding=True)
    assert not cart_lost(3, 1, adding=True)       # a failed add that landed is not a loss
    assert cart_lost(0, 1, adding=False) and not cart_lost(1, 1, adding=False)
    assert not cart_lost(None, 5, adding=False)   # no reply, no verdict


def test_imbalance_simulations():
    one = dataclasses.replace(P, alpha=1.05)
    flat = model.affinity_imbalance(dataclasses.replace(P, users=1000), SEED, trials=300)
    heavy = model.affinity_imbalance(one, SEED, trials=300)
    assert np.median(heavy) > np.median(flat) > 1.0
    # users alone per backend (U = N): max/mean is the heaviest user's weight over the mean
    solo = dataclasses.replace(P, users=20, backends=20)
    w = activity(20, solo.alpha, SEED)
    lam = model.expected_requests(solo, w)
    assert np.median(model.affinity_imbalance(solo, SEED, trials=300)) == pytest.approx(
        lam.max() / lam.mean(), rel=0.1)
    rr = model.multinomial_imbalance(P, SEED, trials=500)
    assert 1.0 < np.median(rr) < model.central_interval(rr)[1] < 1.3
    lo, hi = model.central_interval(np.arange(1001.0))
    assert (lo, hi) == pytest.approx((1.5, 998.5))


def test_census_and_backend_at():
    rows = [{"seq": 0, "sent_s": 1.0, "done_s": 1.1, "outcome": "ok", "backend": "b1"},
            {"seq": 1, "sent_s": 2.0, "done_s": 2.1, "outcome": "ok", "backend": "b2"},
            {"seq": 2, "sent_s": 3.0, "done_s": 3.1, "outcome": "5xx", "backend": "b3"},
            {"seq": 3, "sent_s": 4.0, "done_s": 4.1, "outcome": "ok", "backend": "b2"}]
    assert backend_at(rows, 0.5) is None              # not started
    assert backend_at(rows, 1.5) == "b1"
    assert backend_at(rows, 3.5) == "b2"              # a failed reply moves nothing
    assert backend_at(rows, 4.05) is None             # checked out
    by = sessions([dict(r, session=7) for r in rows])
    assert census(by, 2.5) == {7: "b2"}


def test_bad_parameters_name_the_field():
    with pytest.raises(UsageError, match="failed"):
        Params(failed=11)
    with pytest.raises(UsageError, match="t_back"):
        Params(t_fail=8, t_back=8.5)
    with pytest.raises(UsageError, match="seconds"):
        Params(t_fail=8, seconds=9)


# -- every claim holds on well-behaved data ------------------------------------------------
def test_every_claim_holds_on_good_data(good):
    bad = [f"{c.id}: {c.predicted} vs {c.measured}" for k, c in good.items()
           if k != "_analysis" and not c.holds]
    assert not bad
    a = good["_analysis"]
    assert a.variants["cookie-local"]["lost_elsewhere"] == 0
    assert a.variants["cookie-local"]["lost"] == a.variants["cookie-local"]["on_failed"]
    assert {r["variant"] for r in a.series["per-backend"]} == set(P.variants)


def test_only_shows_the_others_as_skipped():
    p = dataclasses.replace(P, variants=("cookie-local",))
    got = run(p)
    assert got["cookie-local-lost-carts"].holds
    skipped = [k for k, c in got.items() if k != "_analysis" and c.skipped]
    assert "recovery-curve" in skipped and "hot-roundrobin-imbalance" in skipped


# -- and does not hold with its failure injected -------------------------------------------
@pytest.mark.parametrize("claim,variant,options", [
    ("cookie-local-lost-carts", "cookie-local", {"lose_elsewhere": 40}),
    ("cookie-local-lost-only-there", "cookie-local", {"lose_elsewhere": 1}),
    ("cookie-local-failed-requests", "cookie-local", {"failures": 16}),
    ("cookie-local-detection", "cookie-local", {"detect_s": 0.8}),
    ("cookie-redis-no-lost-carts", "cookie-redis", {"lose_elsewhere": 1}),
    ("cookie-redis-no-failed-requests", "cookie-redis", {"failures": 1}),
    ("drain-ended-kept", "drain", {"lose_on_drain": True}),
    ("drain-lost-carts", "drain", {"lose_on_drain": True, "users": 1000}),
    ("drain-no-new-sessions", "drain", {"no_drain": True}),
    ("recovery-curve", "recovery", {"never_back": True}),
    ("hot-backends-imbalance", "hot-backends", {"placement": "per-request"}),
    ("hot-roundrobin-imbalance", "hot-roundrobin", {"placement": "affinity"}),
    ("hot-roundrobin-no-lost-carts", "hot-roundrobin", {"lose_elsewhere": 1}),
    ("stick-no-peers-lost-affinity", "stick-no-peers", {"replicated": True}),
    ("stick-no-peers-only-its-sessions", "stick-no-peers", {"move_survivors": 1}),
    ("stick-peers-lost-affinity", "stick-peers", {"replicated": False}),
])
def test_claim_fails_with_its_failure_injected(good, claim, variant, options):
    assert good[claim].holds
    options = dict(options)
    # A failure worth half the prediction's tolerance needs more users to show at 3 sigma
    p = dataclasses.replace(P, users=options.pop("users", P.users))
    got = run(p, **{variant: options})
    assert got[claim].verdict == "does not hold", got[claim]


def test_recovery_deviation_in_tolerance_units():
    curve = [{"share": 0.1, "predicted": 0.1, "active": 100},
             {"share": 0.19, "predicted": 0.1, "active": 100}]
    tol = 3 * math.sqrt(0.09 / 100)  # 0.09
    assert recovery_deviation(P, curve) == pytest.approx(0.09 / tol)
    assert recovery_deviation(P, [{"share": None, "predicted": 0.1, "active": 0}]) is None


# -- the users workload against real HAProxy and backends on loopback -----------------------
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")
def test_users_keep_carts_behind_cookie_affinity_and_lose_them_with_their_backend(tmp_path):
    """Users with their own jars behind `cookie SRV insert`: each session stays on one
    backend and its cart grows; when that backend dies, its sessions (and only they) see
    their carts shrink, and HAProxy's redispatch hides the failure from them."""
    from lblab.ready import wait_until
    from lblab.workloads.backend import BackendConfig
    from lblab.workloads.users import UsersConfig
    from lbnodes.l7 import L7Config, Server, render

    with socket.socket() as s1, socket.socket() as s2, socket.socket() as s3, \
            socket.socket() as s4:
        for s in (s1, s2, s3, s4):
            s.bind(("127.0.0.1", 0))
        ports = [s.getsockname()[1] for s in (s1, s2, s3, s4)]
    procs = []
    try:
        for i, port in enumerate(ports[:3], start=1):
            cfg = tmp_path / f"b{i}.json"
            cfg.write_text(json.dumps(dataclasses.asdict(BackendConfig(
                name=f"b{i}", ip="127.0.0.1", port=port, service_ms=0))))
            procs.append(subprocess.Popen([sys.executable, "-m", "lblab.workloads.backend",
                                           str(cfg)]))
        l7 = L7Config("l7", "127.0.0.1", ports[3], tuple(
            Server(f"b{i}", "127.0.0.1", port) for i, port in enumerate(ports[:3], 1)),
            cookie=True, check=True, check_inter_ms=100, retries=3,
            retry_on="conn-failure empty-response", redispatch=True)
        (tmp_path / "h.cfg").write_text(render(l7, str(tmp_path / "h.sock")))
        procs.append(subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "h.cfg")],
                                      stderr=subprocess.DEVNULL))

        def answering() -> bool:
            for port in ports:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)):
                        return False
            return True

        wait_until(answering, timeout=15, what="backends and haproxy to listen")
        users = UsersConfig(url=f"http://127.0.0.1:{ports[3]}/cart", users=30,
                            duration_s=2.5, think_s=0.2, tau_s=0, seed=3,
                            records=str(tmp_path / "u.csv"), summary=str(tmp_path / "u.json"),
                            start_file=str(tmp_path / "start"))
        (tmp_path / "u-cfg.json").write_text(json.dumps(dataclasses.asdict(users)))
        run_users = subprocess.Popen([sys.executable, "-m", "lblab.workloads.users",
                                      str(tmp_path / "u-cfg.json")])
        wait_until((tmp_path / "start").exists, timeout=15, what="the users to start")
        threading.Event().wait(1.0)  # the fault at t = 1 s of the users' 2.5 s
        procs[0].kill()
        assert run_users.wait(timeout=30) == 0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    rows = read_table(tmp_path / "u.csv")
    by = sessions(rows)
    assert len(by) == 30 and all(r["outcome"] == "ok" for r in rows)
    first = {sid: rs[0]["backend"] for sid, rs in by.items()}
    lost = {sid for sid, rs in by.items() if any(r["lost"] for r in rs)}
    assert lost and lost == {sid for sid, b in first.items() if b == "b1"}
    for sid, rs in by.items():
        if sid not in lost:
            assert {r["backend"] for r in rs} == {first[sid]}
            assert [r["items"] for r in rs if r["kind"] == "add"] == list(
                range(1, 1 + sum(r["kind"] == "add" for r in rs)))
