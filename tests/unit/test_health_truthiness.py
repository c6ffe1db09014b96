"""health-truthiness: the models against hand-computed values, the app's signal logic, and
analyse + claims on synthetic raw data: a world that behaves as predicted (every claim
holds) and, per claim, the same world with that claim's failure injected."""

from __future__ import annotations

import math

import pytest

from experiments.health_truthiness import EXPERIMENT, lb_config
from experiments.health_truthiness.app import ErrorWindow, Verdict, agent_reply, ready_reply
from experiments.health_truthiness.params import (
    CHECKS,
    FAULTS,
    cart_rate_per_backend,
    detect_bound_s,
    eject_bound_s,
    erlang_quantile,
    error_memory_s,
    false_ejections_per_check,
    fleet_empty_range_s,
    passive_eject_range_s,
    passive_eject_s,
    quick,
    requests_to_run,
    requests_to_run_sd,
    routes,
)
from lblab.errors import UsageError
from lblab.params import apply_overrides
from lblab.raw import Raw
from lblab.workloads.client import ClientConfig, target_picks
from lbnodes import l7
from topologies.two_tier import lb_back_ip, lb_front_ip

P = quick()
SAMPLE_S = 0.05


# -- models ---------------------------------------------------------------------------------
def test_requests_to_run_matches_the_issue_and_small_cases():
    assert requests_to_run(0.5, 10) == pytest.approx(2046)
    assert requests_to_run(0.5, 1) == pytest.approx(2)          # geometric: 1 / p
    assert requests_to_run(0.5, 2) == pytest.approx(6)          # (1 - 1/4) / (1/2 * 1/4)
    assert requests_to_run_sd(0.5, 1) == pytest.approx(math.sqrt(2))  # sqrt((1-p)) / p


def test_false_ejections_per_check_solves_the_fall_rise_chain():
    # fall = rise = 1: up -> down on a failure, back on a pass: q (1 - q) per check.
    assert false_ejections_per_check(0.3, 1, 1) == pytest.approx(0.21)
    # fall = 2, rise = 1: states U0, U1, D; pi(U1) = q pi(U0); D keeps itself on a
    # failure, so pi(D) = q pi(U1) / (1 - q); at q = 0.5: U0 = 1/2, U1 = 1/4, D = 1/4,
    # ejections = q pi(U1) = 1/8.
    assert false_ejections_per_check(0.5, 2, 1) == pytest.approx(0.125)
    assert false_ejections_per_check(0.5, 3, 2) == pytest.approx(0.05)


def test_check_timing_bounds_by_hand():
    # inter 0.2 + (fall-1) (fastinter 0.1 + timeout 0.1) + timeout 0.1 = 0.7 s
    assert detect_bound_s(P) == pytest.approx(0.7)
    # gray: the window fills to 0.2 of 1 s first: 0.2 + 0.7
    assert eject_bound_s(P, "deep", "gray") == pytest.approx(0.9)
    assert eject_bound_s(P, "deep", "intermittent") == pytest.approx(0.2 / 0.8 + 0.7)
    assert eject_bound_s(P, "multi", "dep-down") == pytest.approx(0.3)
    assert error_memory_s(P, 2.0) == pytest.approx(0.8)
    assert error_memory_s(P, 0.1) == 0.0
    # D 2 + memory 0.8 - detect (0.7 .. 0.2) + recovery (0.1 .. 0.5)
    assert fleet_empty_range_s(P) == pytest.approx((2.2, 3.1))
    assert passive_eject_s(P, "gray") == pytest.approx((0.5, math.sqrt(10) / 20))
    lo, hi = passive_eject_range_s(P, "gray")
    assert lo < 0.5 < hi


def test_erlang_quantiles_by_hand():
    assert erlang_quantile(1, 2.0, 0.5) == pytest.approx(math.log(2) / 2)  # exponential
    # k = 2: CDF 1 - e^-x (1 + x) = 0.5 at x = 1.67835 (tabulated median of Gamma(2))
    assert erlang_quantile(2, 1.0, 0.5) == pytest.approx(1.67835, abs=1e-4)


def test_routes_and_rates():
    assert routes(P, "gray") == [("/cart", 1.0)]
    assert routes(P, "shared-blip") == [("/cart", 0.5), ("/static", 0.5)]
    assert cart_rate_per_backend(P, "gray") == pytest.approx(20)
    assert cart_rate_per_backend(P, "shared-blip") == pytest.approx(10)


def test_random_targets_are_reproducible_and_uniform():
    cfg = ClientConfig(targets=["a", "b", "c", "d"], seed=3, target_choice="random")
    picks = target_picks(cfg, 4000)
    assert picks == target_picks(cfg, 4000)
    assert all(abs(picks.count(k) - 1000) < 120 for k in range(4))
    assert target_picks(ClientConfig(targets=["a", "b"]), 4) == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="target_choice"):
        target_picks(ClientConfig(targets=["a"], target_choice="zipf"), 1)


# -- the app's signals ---------------------------------------------------------------------
@pytest.mark.parametrize(("verdict", "ready", "agent"), [
    (Verdict(True, True, 0.0, 0.0), 200, "up 100%"),
    (Verdict(True, True, None, None), 200, "up 100%"),
    (Verdict(False, True, 0.0, 0.0), 503, "down"),
    (Verdict(True, False, 0.9, 0.0), 503, "up 50%"),     # shared failure: weight, not down
    (Verdict(True, True, 0.5, 0.5), 503, "down"),        # own errors
    (Verdict(True, False, 0.9, 0.5), 503, "down"),       # own errors win over gating
])
def test_ready_and_agent_replies(verdict, ready, agent):
    assert ready_reply(verdict, 0.2)[0] == ready
    assert agent_reply(verdict, 0.2).strip() == agent


def test_error_window_forgets_and_separates_shared_errors():
    w = ErrorWindow(1.0, 2)
    assert w.rates(0.0) == (None, None)
    w.add(0.0, True, shared=True)
    w.add(0.5, True)
    w.add(0.6, False)
    assert w.rates(0.7) == pytest.approx((2 / 3, 1 / 3))
    assert w.rates(1.55) == (None, None)  # only one row left: below the minimum


# -- configs and params --------------------------------------------------------------------
def test_each_check_type_renders_its_haproxy_features():
    text = {c: l7.render(lb_config(P, c, i), "/s") for i, c in enumerate(CHECKS, start=1)}
    assert "httpchk" not in text["l4"] and "agent" not in text["l4"]
    assert "GET /healthz" in text["shallow"] and "GET /ready" in text["deep"]
    assert "observe layer7 error-limit 10 on-error mark-down" in text["passive"]
    assert f"inter {P.passive_inter_ms}ms" in text["passive"]
    assert "agent-check agent-port 8081 agent-inter 200ms" in text["multi"]
    assert "httpchk" not in text["multi"]


@pytest.mark.parametrize(("sets", "message"), [
    (["timeout_check_ms=300"], "timeout_check_ms must be below inter_ms"),
    (["dep_deadline_ms=150"], "dep_deadline_ms must be below timeout_check_ms"),
    (["settle_s=1"], "settle_s must be at least"),
    (["faults=gray,nope"], "faults=nope is not one of"),
    (["static_share=0.01"], "static_share must be at least 0.05"),
    (["intermittent_p=0.1"], "intermittent_p must exceed error_threshold"),
    (["dep_fault=kill"], "dep_fault=kill is not one of"),
])
def test_bad_parameters_are_one_line_usage_errors(sets, message):
    with pytest.raises(UsageError, match=message):
        apply_overrides("health-truthiness", P, sets)


def test_plan_has_one_variant_per_fault():
    assert [v.name for v in EXPERIMENT.variants(P)] == list(FAULTS)
    assert sum(v.seconds for v in EXPERIMENT.variants(P)) < 60


# -- a synthetic world ------------------------------------------------------------------------
T0 = P.fault_at_s


def _timeline(fault: str) -> dict:
    return {"events": [{"what": "fault", "fired": T0},
                       {"what": "restore", "fired": T0 + P.duration(fault)}], "problems": []}


def _samples(down: dict, end: float, hana: dict | None = None) -> list[dict]:
    """down: {check: {server: [(a, b), ...]}} intervals when a server is ejected."""
    rows = []
    for k in range(int(end / SAMPLE_S) + 1):
        t = round(k * SAMPLE_S, 4)
        row = {"t": t}
        for check in CHECKS:
            for s in ("b1", "b2", "b3"):
                ivs = down.get(check, {}).get(s, [])
                row[f"{check}.{s}.status"] = ("DOWN" if any(a <= t < b for a, b in ivs)
                                              else "UP")
                row[f"{check}.{s}.weight"] = 100
                row[f"{check}.{s}.chkdown"] = sum(1 for a, _ in ivs if a <= t)
                row[f"{check}.{s}.hanafail"] = (sum(1 for a, _ in ivs if a <= t)
                                                if check == "passive" and (hana or {}).get(s)
                                                else 0)
                row[f"{check}.{s}.stot"] = 0
                row[f"{check}.{s}.hrsp_5xx"] = 0
        rows.append(row)
    return rows


def _records(fault: str, samples: list[dict], status_of) -> list[dict]:
    """Each node gets `rate` requests/s, spread round robin over the servers up at the
    time (as HAProxy would); status_of(check, server, path, t) -> status."""
    end = P.end(fault)
    paths = [p for p, _ in routes(P, fault)]
    rows, rid = [], 0
    for i, check in enumerate(CHECKS, start=1):
        rr = 0
        for k in range(int(end * P.rate)):
            t = k / P.rate + 0.001 * i
            row = samples[min(len(samples) - 1, int(t / SAMPLE_S))]
            up = [s for s in ("b1", "b2", "b3") if row[f"{check}.{s}.status"] == "UP"]
            path = paths[k % len(paths)]
            if up:
                server = up[rr % len(up)]
                rr += 1
                status = status_of(check, server, path, t)
            else:
                server, status = "", 503
            rows.append({"id": rid, "attempt": 0, "intended_s": t, "status": status,
                         "outcome": "ok" if status < 500 else "5xx", "backend": server,
                         "target": f"http://{lb_front_ip(i)}{path}"})
            rid += 1
    return rows


def _apps(flapping_checks: int = 200) -> dict:
    start = [{"checks": {}} for _ in range(3)]
    per = flapping_checks // 3
    end = [{"checks": {kind: {lb_back_ip(i): per for i in range(1, 6)}
                       for kind in ("healthz", "ready", "agent")}} for _ in range(3)]
    return {"start": start, "end": end}


def _window(fault: str) -> tuple[float, float]:
    return T0, T0 + P.duration(fault)


def _single(fault: str, **change) -> tuple[list, list]:
    """gray / dep-down as predicted: deep out at +0.5, passive at +0.5 (its 10th error),
    multi at +0.2; l4 and shallow never."""
    t0, t1 = _window(fault)
    ejected = {"deep": t0 + 0.5, "passive": t0 + 0.5, "multi": t0 + 0.2, **change}
    down = {c: {"b1": [(at, t1 + 0.5)]} for c, at in ejected.items() if at is not None}
    samples = _samples(down, P.end(fault))

    def status(check, server, path, t):
        return 500 if server == "b1" and t0 <= t < t1 else 200

    return _records(fault, samples, status), samples


def _blip(empty_s: float = 2.6, static_fail: bool = False, multi_down: bool = False):
    fault = "shared-blip"
    t0, t1 = _window(fault)
    down = {"deep": {s: [(t0 + 0.4, t0 + 0.4 + empty_s)] for s in ("b1", "b2", "b3")}}
    if multi_down:
        down["multi"] = {"b2": [(t0 + 0.3, t0 + 0.8)]}
    samples = _samples(down, P.end(fault))

    def status(check, server, path, t):
        if t0 <= t < t1 and (path == "/cart" or (static_fail and check == "multi")):
            return 503
        return 200

    return _records(fault, samples, status), samples


def _intermittent(every: int | None = None, deep_at: float = 0.6):
    """b1 errs on a fixed pseudo-random pattern; passive ejects at each 10th consecutive
    error (or, injected, every `every` requests to b1), for 0.3 s."""
    import random

    fault = "intermittent"
    t0, t1 = _window(fault)
    rng = random.Random(7)
    errs = {}
    # Walk passive's requests to b1 (every 3rd of 20/s per backend) to place its ejections.
    ejections, run, served, t = [], 0, 0, t0
    while t < t1:
        err = rng.random() < P.intermittent_p
        errs[round(t, 4)] = err
        served += 1
        run = run + 1 if err else 0
        if (every is None and run >= P.error_limit) or (every and served % every == 0):
            ejections.append((t + 0.01, t + 0.31))
            run = 0
            t += 0.31
        t += 1 / cart_rate_per_backend(P, fault)
    down = {"passive": {"b1": ejections}, "deep": {"b1": [(t0 + deep_at, t1 + 1)]}}
    samples = _samples(down, P.end(fault), hana={"b1": True})

    def status(check, server, path, t):
        if server == "b1" and t0 <= t < t1:
            return 500 if rng.random() < P.intermittent_p else 200
        return 200

    return _records(fault, samples, status), samples


def _flapping(shallow: int = 10, deep: int = 10, l4: int = 0):
    fault = "flapping"
    t0, t1 = _window(fault)

    def spread(n):
        return [(t0 + (k + 0.5) * (t1 - t0) / max(n, 1), t0 + (k + 0.5) * (t1 - t0)
                 / max(n, 1) + 0.02) for k in range(n)]

    down = {"shallow": {"b2": spread(shallow)}, "deep": {"b3": spread(deep)},
            "l4": {"b1": spread(l4)}}
    samples = _samples(down, P.end(fault))
    return _records(fault, samples, lambda *a: 200), samples


def _raw(**overrides) -> Raw:
    made = {"gray": _single("gray"), "dep-down": _single("dep-down"), "shared-blip": _blip(),
            "intermittent": _intermittent(), "flapping": _flapping()}
    made.update(overrides)
    tables = {f: {"client-records": rec, "haproxy": smp} for f, (rec, smp) in made.items()}
    docs = {f: {"timeline": _timeline(f), "apps": _apps()} for f in made}
    return Raw.of(tables=tables, docs=docs)


def _claims(raw: Raw) -> dict:
    a = EXPERIMENT.analyse(P, raw)
    return {c.id: c for c in EXPERIMENT.claims(P, a)}


def test_the_predicted_world_holds_every_claim():
    claims = _claims(_raw())
    failing = {i: (c.predicted, c.measured, c.verdict) for i, c in claims.items()
               if not c.holds}
    assert not failing
    assert len(claims) == 25


INJECTED = [
    ("gray-l4-errors-served", dict(gray=_single("gray", l4=T0 + 0.5))),
    ("gray-l4-never-ejects", dict(gray=_single("gray", l4=T0 + 2.5))),
    ("gray-shallow-errors-served", dict(gray=_single("gray", shallow=T0 + 0.5))),
    ("gray-shallow-never-ejects", dict(gray=_single("gray", shallow=T0 + 2.5))),
    ("gray-deep-eject", dict(gray=_single("gray", deep=T0 + 1.5))),
    ("gray-deep-errors", dict(gray=_single("gray", deep=T0 + 2.0))),
    ("gray-passive-eject", dict(gray=_single("gray", passive=T0 + 1.8))),
    ("gray-multi-eject", dict(gray=_single("gray", multi=None))),
    ("dep-down-l4-errors-served", {"dep-down": _single("dep-down", l4=T0 + 0.3)}),
    ("dep-down-l4-never-ejects", {"dep-down": _single("dep-down", l4=T0 + 2.5)}),
    ("dep-down-shallow-errors-served", {"dep-down": _single("dep-down", shallow=T0 + 0.3)}),
    ("dep-down-shallow-never-ejects", {"dep-down": _single("dep-down", shallow=T0 + 2.5)}),
    ("dep-down-deep-eject", {"dep-down": _single("dep-down", deep=None)}),
    ("dep-down-deep-errors", {"dep-down": _single("dep-down", deep=T0 + 1.9)}),
    ("dep-down-passive-eject", {"dep-down": _single("dep-down", passive=T0 + 0.05)}),
    ("dep-down-multi-eject", {"dep-down": _single("dep-down", multi=T0 + 1.0)}),
    ("blip-deep-fleet-empty", {"shared-blip": _blip(empty_s=1.0)}),
    ("blip-deep-all-fail", {"shared-blip": _blip(empty_s=0.0)}),
    ("blip-multi-serves-static", {"shared-blip": _blip(static_fail=True)}),
    ("blip-multi-keeps-fleet", {"shared-blip": _blip(multi_down=True)}),
    ("intermittent-passive-blind-spot", {"intermittent": _intermittent(every=4)}),
    ("intermittent-deep-eject", {"intermittent": _intermittent(deep_at=2.0)}),
    ("flapping-shallow-false-ejections", {"flapping": _flapping(shallow=60)}),
    ("flapping-deep-false-ejections", {"flapping": _flapping(deep=0)}),
    ("flapping-l4-multi-none", {"flapping": _flapping(l4=1)}),
]


@pytest.mark.parametrize(("claim", "world"), INJECTED, ids=[c for c, _ in INJECTED])
def test_each_claim_fails_when_its_failure_is_injected(claim, world):
    claims = _claims(_raw(**world))
    assert claims[claim].verdict == "does not hold", (claims[claim].predicted,
                                                      claims[claim].measured)


def test_every_claim_has_an_injected_failure():
    assert set(_claims(_raw())) == {c for c, _ in INJECTED}


def test_only_shows_claims_of_absent_variants_as_skipped():
    raw = _raw()
    only = Raw.of(tables={"gray": raw["gray"].tables}, docs={"gray": raw["gray"].docs})
    claims = _claims(only)
    assert claims["gray-deep-eject"].holds
    assert claims["blip-deep-fleet-empty"].skipped
    assert claims["flapping-l4-multi-none"].skipped


def test_analysis_measures_the_eject_table():
    a = EXPERIMENT.analyse(P, _raw())
    gray = a.variants["gray"]["checks"]
    assert gray["l4"]["eject_s"] is None and gray["deep"]["eject_s"] == pytest.approx(0.5)
    assert gray["multi"]["b1_errors_before_eject"] <= 5
    blip = a.variants["shared-blip"]["checks"]["deep"]
    assert blip["fleet_empty_s"] == pytest.approx(2.6, abs=SAMPLE_S)
    assert {r["check"] for r in a.series["ejections"]} == set(CHECKS)
