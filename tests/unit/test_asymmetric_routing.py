"""asymmetric-routing's analysis and claims on synthetic raw data."""

from __future__ import annotations

import pytest

from experiments.asymmetric_routing import EXPERIMENT, Params, predicted_broken
from lblab.raw import Raw

P = Params(routers=2, connections=200)


SERVER = "10.1.1.1"


def records(n: int, broken: int) -> list[dict]:
    return [{"id": i, "attempt": 0, "intended_s": i / 100, "latency_ms": None if i < broken
             else 2.0, "outcome": "timeout" if i < broken else "ok", "source": None,
             "sport": 40000 + i, "target": f"http://{SERVER}:8080/"} for i in range(n)]


def flows(n: int, broken: int, died_on_syn_router: int = 0,
          completed_dropped: int = 0) -> list[dict]:
    """Each connection's SYN went through lb1; a broken one's SYN-ACK died on lb2 (or, for
    the first `died_on_syn_router`, on lb1 itself); `completed_dropped` completed
    connections also had a packet dropped."""
    rows = []
    for i in range(n):
        tup = {"saddr": "10.0.1.1", "sport": 40000 + i, "daddr": SERVER, "dport": 8080}
        rows.append({"router": "lb1", "set": "syn_seen", **tup})
        dead = i < broken or broken <= i < broken + completed_dropped
        if dead:
            router = "lb1" if i < died_on_syn_router else "lb2"
            rows.append({"router": router, "set": "invalid_seen", "saddr": SERVER,
                         "sport": 8080, "daddr": "10.0.1.1", "dport": 40000 + i})
    return rows


def raw(broken: dict[str, int], invalid: dict[str, int], n: int = 200,
        **flow_faults: int) -> Raw:
    tables = {v: {"client-records": records(n, broken[v]),
                  "routers": [{"router": "lb1", "invalid_drops": invalid[v]},
                              {"router": "lb2", "invalid_drops": 0}],
                  "flows": flows(n, broken[v], **flow_faults) if v != "stateless" else []}
              for v in broken}
    docs = {v: {"client-summary": {"latency_ms": {"p99": 3.0}}} for v in broken}
    return Raw.of(tables, docs)


def verdicts(data: Raw) -> dict[str, bool]:
    a = EXPERIMENT.analyse(P, data)
    return {c.id: c.holds for c in EXPERIMENT.claims(P, a)}


def test_prediction_is_one_minus_sum_of_share_products():
    assert predicted_broken(2, "independent") == pytest.approx(0.5, abs=1e-3)
    assert predicted_broken(4, "independent") == pytest.approx(0.75, abs=1e-3)
    assert predicted_broken(3, "symmetric") == 0.0


def test_all_claims_hold_when_the_data_behaves():
    got = verdicts(raw({"symmetric": 0, "stateless": 0, "independent": 100},
                       {"symmetric": 0, "stateless": 0, "independent": 250}))
    assert all(got.values()), got


@pytest.mark.parametrize(("broken", "invalid", "failing"), [
    ({"symmetric": 0, "stateless": 0, "independent": 40}, {"symmetric": 0, "stateless": 0,
     "independent": 250}, "independent-breaks"),          # far fewer broken than (N-1)/N
    ({"symmetric": 3, "stateless": 0, "independent": 100}, {"symmetric": 0, "stateless": 0,
     "independent": 250}, "symmetric-breaks-none"),
    ({"symmetric": 0, "stateless": 2, "independent": 100}, {"symmetric": 0, "stateless": 0,
     "independent": 250}, "stateless-breaks-none"),
    ({"symmetric": 0, "stateless": 0, "independent": 100}, {"symmetric": 5, "stateless": 0,
     "independent": 250}, "symmetric-no-invalid-drops"),
])
def test_each_claim_fails_when_its_failure_is_in_the_data(broken, invalid, failing):
    got = verdicts(raw(broken, invalid))
    assert got[failing] is False
    assert all(v for k, v in got.items() if k != failing), got


OK = ({"symmetric": 0, "stateless": 0, "independent": 100},
      {"symmetric": 0, "stateless": 0, "independent": 250})


def test_a_broken_flow_that_died_on_its_own_router_fails_the_where_claim():
    got = verdicts(raw(*OK, died_on_syn_router=1))
    assert got["independent-broken-die-elsewhere"] is False
    assert got["independent-survivors-untouched"] is True


def test_a_completed_flow_with_an_invalid_drop_fails_the_survivors_claim():
    got = verdicts(raw(*OK, completed_dropped=1))
    assert got["independent-survivors-untouched"] is False
    assert got["independent-broken-die-elsewhere"] is True


def test_a_variant_left_out_with_only_is_a_skipped_claim():
    data = raw({"symmetric": 0, "stateless": 0}, {"symmetric": 0, "stateless": 0})
    claims = {c.id: c for c in EXPERIMENT.claims(P, EXPERIMENT.analyse(P, data))}
    assert claims["independent-breaks"].skipped == "needs variant independent (not run)"
    assert claims["symmetric-breaks-none"].holds
