"""cgnat-skew's models, analysis and claims on synthetic raw data; its client fan-out."""

from __future__ import annotations

import math
import threading

import pytest

from experiments.cgnat_skew import EXPERIMENT, Params, model
from experiments.cgnat_skew.lab import run_clients
from experiments.cgnat_skew.params import POLICIES, settings, units
from lblab import metrics
from lblab.errors import LabError
from lblab.raw import Raw
from topologies.cgnat import anycast_back_ip, user_ip

P = Params(users=100, cgnat_shares=(0.4, 0.2), sweep=(0.25, 0.5), rate=100, seconds=2)
N = 200
"""Requests per synthetic variant: 80 from u1 (40 %), 40 from u2, 80 direct from c1."""


def unit_name(layer: str, i: int) -> tuple[str, str]:
    """(backend, peer) of a request served by unit i (0-based)."""
    if layer == "ecmp":
        return "b1", anycast_back_ip(i + 1)
    return f"b{i + 1}", "10.1.0.2"


def rows(host: str, picks: list[int], layer: str, k: int, users: int,
         failed: int = 0) -> list[dict]:
    out = []
    for j, unit in enumerate(picks):
        backend, peer = unit_name(layer, unit)
        bad = j < failed
        out.append({"id": j, "attempt": 0, "intended_s": j / 100, "sent_s": j / 100,
                    "latency_ms": None if bad else 40.0 + unit,
                    "outcome": "timeout" if bad else "ok", "backend": "" if bad else backend,
                    "peer": "" if bad else peer, "source": user_ip(k, 1 + j % users)})
    return out


def rotation(count: int, n_units: int, start: int = 0) -> list[int]:
    return [(start + j) % n_units for j in range(count)]


def variant(policy: str, picks: dict[str, list[int]] | None = None, failed: int = 0) -> dict:
    """A variant's tables. Default picks: what the policy does when it works."""
    layer = policy.split(":")[0]
    n_units = len(units(P, layer))
    if picks is None:
        if policy in ("ecmp:src_ip", "l7:source", "l4:jhash-saddr"):
            # u1 (one address after NAT) on unit 0, u2 on unit 1, direct users spread
            picks = {"u1": [0] * 80, "u2": [1] * 40, "c1": rotation(80, n_units)}
        elif policy == "l7:weighted":
            cycle = [0, 1, 0, 2, 0, 3]
            every = [cycle[j % 6] for j in range(N)]
            picks = {"u1": every[:80], "u2": every[80:120], "c1": every[120:]}
        else:
            every = rotation(N, n_units)
            picks = {"u1": every[:80], "u2": every[80:120], "c1": every[120:]}
    users = {"u1": 40, "u2": 20, "c1": 40}
    k = {"u1": 1, "u2": 2, "c1": 0}
    return {f"{h}-records": rows(h, p, layer, k[h], users[h], failed if h == "c1" else 0)
            for h, p in picks.items()}


def raw(overrides: dict[str, dict] | None = None, only: tuple[str, ...] = ()) -> Raw:
    names = [n for n in settings(P) if not only or n in only]
    tables = {}
    for name in names:
        policy = settings(P)[name].policy
        tables[name] = (overrides or {}).get(name) or variant(policy)
    docs = {n: {"population": {"u1": 40, "u2": 20, "c1": 40}} for n in names}
    return Raw.of(tables, docs)


def verdicts(data: Raw) -> dict[str, bool]:
    a = EXPERIMENT.analyse(P, data)
    return {c.id: c.holds for c in EXPERIMENT.claims(P, a)}


@pytest.fixture(scope="module")
def healthy():
    return verdicts(raw())


# -- models against hand-computed values ----------------------------------------------------
def test_multinomial_quantile_by_hand():
    # 4 requests over 2 units: P(max = 4) = 2/16 > 0.3 %, so the 99.7th percentile is 4/2
    assert model.multinomial_max_over_mean(4, 2) == 2.0
    assert model.multinomial_max_over_mean(1, 3) == 3.0
    # n = 1600 over 4: counts ~ N(400, 17.3); P(max > x) ~ 4 P(X > x) = 0.003 gives
    # z = 3.17, x = 455: max/mean ~ 1.14
    assert model.multinomial_max_over_mean(1600, 4) == pytest.approx(1.137, abs=0.012)
    assert model.multinomial_max_over_mean(1600, 4) == model.multinomial_max_over_mean(1600, 4)


def test_rotation_bound_by_hand():
    assert model.rotation_max_over_mean(497, 497, 4) == pytest.approx(125 / 124.25)
    assert model.rotation_max_over_mean(400, 400, 4) == 1.0
    # two requests failed after taking their turn: the answered ones may be 2 short
    assert model.rotation_max_over_mean(402, 400, 4) == pytest.approx(101 / 100)


def test_haproxy_full_hash_matches_the_c_code():
    # values printed by HAProxy's __full_hash compiled with gcc
    assert model.full_hash(0) == 2874071335
    assert model.full_hash(1) == 881230262
    assert model.full_hash(4096) == 1237450891
    assert model.full_hash(16399) == 1947365060


def test_ring_shares():
    assert model.ring_shares(1) == [1.0]
    shares = model.ring_shares(4)
    assert sum(shares) == pytest.approx(1.0)
    # 16 points per server make the ring uneven: 0.289, 0.185, 0.243, 0.283
    assert [round(s, 3) for s in shares] == [0.289, 0.185, 0.243, 0.283]


def test_bounded_slots_by_hand():
    # served 0: ceil(1 x 1.25) = 2 slots over 4 servers, but never 0 for a server
    assert model.bounded_slots(0, 125, 4).tolist() == [1, 1, 1, 1]
    # served 6: ceil(7 x 1.25) = 9 slots; remainder goes to the last by cumulative weight
    assert model.bounded_slots(6, 125, 4).tolist() == [2, 2, 2, 3]
    # served 8: ceil(9 x 1.25) = 12 slots: 3 each
    assert model.bounded_slots(8, 125, 4).tolist() == [3, 3, 3, 3]
    assert model.bounded_slots(200, 150, 2).tolist() == [151, 151]


def test_simulations_reduce_to_hand_cases_without_concurrency():
    # service time 0: nobody is ever busy. leastconn ties rotate (least recently changed):
    # 10 requests over 4 -> 3, 3, 2, 2 -> max/mean 3 / 2.5
    assert model.simulate("leastconn", 10, rate=100, service_ms=0, servers=4, runs=5) \
        == [1.2] * 5
    # bounded: every server has one slot and is free: everything goes to the preferred one
    assert model.simulate("bounded", 10, rate=100, service_ms=0, servers=4, runs=5) \
        == [4.0] * 5
    # random2 with every tie: the second draw, i.e. one draw on the ring
    busiest = max(model.ring_shares(4)) * 4
    got = model.simulate("random2", 3000, rate=100, service_ms=0, servers=4, runs=20)
    assert sum(got) / len(got) == pytest.approx(busiest, abs=0.05)


def test_simulated_bounds_are_deterministic_and_shrink_with_n():
    kw = {"rate": 200, "service_ms": 40, "servers": 4}
    a = model.simulated_max_over_mean("leastconn", 300, **kw)
    assert a == model.simulated_max_over_mean("leastconn", 300, **kw)
    assert model.simulated_max_over_mean("leastconn", 1200, **kw) < a
    # bounded loads at 8 requests in flight: well above f = 1.25 (ceilings), below 4
    b = model.simulated_max_over_mean("bounded", 300, **kw)
    assert 1.25 < b < 2.5


# -- analysis ---------------------------------------------------------------------------------
def test_shares_series_holds_every_policy():
    a = EXPERIMENT.analyse(P, raw())
    got = {r["policy"] for r in a.series["shares"]}
    assert got == set(POLICIES)
    for policy in POLICIES:
        n_units = len(units(P, policy.split(":")[0]))
        assert sum(1 for r in a.series["shares"] if r["policy"] == policy) == n_units
    assert {(r["policy"], r["cgnat_share"]) for r in a.series["sweep"]} == {
        (p, s) for p in P.sweep_policies for s in P.sweep}


def test_metrics_use_the_shared_definitions():
    a = EXPERIMENT.analyse(P, raw())
    m = a.variants["l7:source"]
    counts = list(m["counts"].values())
    assert counts == [100, 60, 20, 20]
    assert m["jain"] == metrics.jain(counts)
    assert m["max_over_mean"] == pytest.approx(100 / 50)
    assert m["biggest_cgnat_request_share"] == pytest.approx(0.4)
    assert m["biggest_cgnat_on_one_unit"] == 1.0
    assert m["p99_ms_per_unit"]["b2"] == pytest.approx(metrics.latency_p([41.0] * 60, 99))
    assert a.variants["ecmp:5tuple"]["counts"] == {"a1": 67, "a2": 67, "a3": 66}


# -- claims -----------------------------------------------------------------------------------
def test_every_claim_holds_when_the_data_behaves(healthy):
    assert all(healthy.values()), healthy
    expected = {f"{p}-pins-the-cgnat" for p in ("ecmp:src_ip", "l7:source", "l4:jhash-saddr")}
    expected |= {f"{p}-cgnat-on-one-unit" for p in ("ecmp:src_ip", "l7:source",
                                                     "l4:jhash-saddr")}
    expected |= {f"{p}-max-over-mean" for p in ("ecmp:5tuple", "l4:jhash-sport", "l4:numgen",
                                                "l7:roundrobin", "l7:leastconn", "l7:random2",
                                                "l7:bounded")}
    assert set(healthy) == expected | {"l7:weighted-respected"}


def _spread(n_units: int) -> dict[str, list[int]]:
    return {"u1": rotation(80, n_units), "u2": rotation(40, n_units, 1),
            "c1": rotation(80, n_units, 2)}


def _skewed(n_units: int, share: float) -> dict[str, list[int]]:
    """`share` of the requests on unit 0, the rest rotating over all units."""
    heavy = round(share * N)
    every = [0] * heavy + rotation(N - heavy, n_units)
    return {"u1": every[:80], "u2": every[80:120], "c1": every[120:]}


CASES = {
    # source hashing that spreads the CGNAT: neither pinned nor on one unit
    "l7:source-pins-the-cgnat": ("l7:source", _spread(4), 0),
    # u1 sends only 20 % (all on b1) and the others avoid b1: nothing reaches 40 %
    "l4:jhash-saddr-pins-the-cgnat": ("l4:jhash-saddr", {"u1": [0] * 40,
                                                         "u2": [1, 2, 3] * 13 + [1],
                                                         "c1": [1, 2, 3] * 40}, 0),
    # one of u1's 80 requests elsewhere
    "ecmp:src_ip-cgnat-on-one-unit": ("ecmp:src_ip", {"u1": [0] * 79 + [2], "u2": [1] * 40,
                                                      "c1": rotation(80, 3)}, 0),
    # 5-tuple hashing with 40 % on one node: far above the multinomial's 99.7th percentile
    "ecmp:5tuple-max-over-mean": ("ecmp:5tuple", _skewed(3, 0.4), 0),
    "l4:jhash-sport-max-over-mean": ("l4:jhash-sport", _skewed(4, 0.3), 0),
    # a rotation two picks ahead on b1: 52 against ceil(200 / 4) = 50
    "l4:numgen-max-over-mean": ("l4:numgen", {"u1": [0, 0] + rotation(78, 4), "u2":
                                              rotation(40, 4), "c1": rotation(80, 4)}, 0),
    "l7:roundrobin-max-over-mean": ("l7:roundrobin", {"u1": [0, 0] + rotation(78, 4), "u2":
                                                      rotation(40, 4), "c1": rotation(80, 4)},
                                    0),
    "l7:leastconn-max-over-mean": ("l7:leastconn", _skewed(4, 0.35), 0),
    "l7:random2-max-over-mean": ("l7:random2", _skewed(4, 0.35), 0),
    # bounded loads that never overflow: the CGNAT's whole share on one server
    "l7:bounded-max-over-mean": ("l7:bounded", {"u1": [0] * 80, "u2": [0] * 40,
                                                "c1": rotation(80, 4)}, 0),
    # weights ignored: plain round robin gives b1 a quarter, not a half
    "l7:weighted-respected": ("l7:weighted", _spread(4), 0),
}


@pytest.mark.parametrize("failing", sorted(CASES))
def test_each_claim_fails_when_its_failure_is_in_the_data(failing):
    policy, picks, failed = CASES[failing]
    got = verdicts(raw({policy: variant(policy, picks, failed)}))
    assert got[failing] is False
    others = {k: v for k, v in got.items() if not k.startswith(policy)}
    assert all(others.values()), others


def test_pinning_and_one_unit_fail_separately():
    got = verdicts(raw({"l4:jhash-saddr": variant("l4:jhash-saddr", CASES[
        "l4:jhash-saddr-pins-the-cgnat"][1])}))
    assert got["l4:jhash-saddr-cgnat-on-one-unit"] is True
    got = verdicts(raw({"ecmp:src_ip": variant("ecmp:src_ip", CASES[
        "ecmp:src_ip-cgnat-on-one-unit"][1])}))
    assert got["ecmp:src_ip-pins-the-cgnat"] is True


def test_rotation_counts_failed_requests_as_turns_taken():
    # two of c1's requests failed after taking b1's and b2's turns: 49, 49, 50, 50 answered
    picks = {"u1": rotation(80, 4), "u2": rotation(40, 4), "c1": rotation(80, 4)}
    data = raw({"l7:roundrobin": variant("l7:roundrobin", picks, failed=2)})
    a = EXPERIMENT.analyse(P, data)
    m = a.variants["l7:roundrobin"]
    assert (m["requests"], m["attributed"]) == (200, 198)
    assert m["predicted_max_over_mean"] == pytest.approx(50 / (198 / 4))
    assert {c.id: c.holds for c in EXPERIMENT.claims(P, a)}["l7:roundrobin-max-over-mean"]


def test_weighted_tolerance_is_one_round_of_picks():
    a = EXPERIMENT.analyse(P, raw())
    claim = next(c for c in EXPERIMENT.claims(P, a) if c.id == "l7:weighted-respected")
    assert claim.predicted == 0.5 and claim.tolerance == pytest.approx(3 / 200)
    assert "3 binomial" not in claim.note and "(3 + 0) / 200" in claim.note


def test_pinning_slack_is_the_binomial_error_of_the_cgnat_share():
    a = EXPERIMENT.analyse(P, raw())
    claim = next(c for c in EXPERIMENT.claims(P, a) if c.id == "l7:source-pins-the-cgnat")
    assert claim.tolerance == pytest.approx(3 * math.sqrt(0.4 * 0.6 / 200))


def test_a_variant_left_out_with_only_is_a_skipped_claim():
    data = raw(only=("l7:source", "l7:roundrobin"))
    claims = {c.id: c for c in EXPERIMENT.claims(P, EXPERIMENT.analyse(P, data))}
    assert claims["l7:bounded-max-over-mean"].skipped == "needs variant l7:bounded (not run)"
    assert claims["l7:weighted-respected"].skipped
    assert claims["l7:source-pins-the-cgnat"].holds
    assert claims["l7:roundrobin-max-over-mean"].holds


# -- the clients' fan-out -----------------------------------------------------------------------
class FakeRun:
    def __init__(self, failing: set[str]) -> None:
        self.failing, self.ran, self.lock = failing, [], threading.Lock()

    def client(self, node, cfg, tag="client"):
        with self.lock:
            self.ran.append((node, tag))
        if node in self.failing:
            raise LabError(f"client {tag} in {node} failed (exit 1)")
        return {"node": node}


def test_clients_run_each_with_its_own_tag():
    run = FakeRun(set())
    got = run_clients(run, {"u1": object(), "u2": object(), "c1": object()})
    assert sorted(run.ran) == [("c1", "c1"), ("u1", "u1"), ("u2", "u2")]
    assert got["u2"] == {"node": "u2"}


def test_a_failing_client_thread_fails_the_variant():
    run = FakeRun({"u2"})
    with pytest.raises(LabError, match="client u2 in u2 failed"):
        run_clients(run, {"u1": object(), "u2": object(), "c1": object()})
    assert len(run.ran) == 3  # the others ran to their end
    run = FakeRun({"u1", "c1"})
    with pytest.raises(LabError, match="2 clients failed: u1: .*; c1: "):
        run_clients(run, {"u1": object(), "u2": object(), "c1": object()})
