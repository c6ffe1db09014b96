"""asymmetric-routing's analysis and claims on synthetic raw data."""

from __future__ import annotations

import pytest

from experiments.asymmetric_routing import EXPERIMENT, Params, predicted_broken
from lblab.raw import Raw

P = Params(routers=2, connections=200)


def records(n: int, broken: int) -> list[dict]:
    return [{"id": i, "attempt": 0, "intended_s": i / 100, "latency_ms": None if i < broken
             else 2.0, "outcome": "timeout" if i < broken else "ok"} for i in range(n)]


def raw(broken: dict[str, int], invalid: dict[str, int], n: int = 200) -> Raw:
    tables = {v: {"client-records": records(n, broken[v]),
                  "routers": [{"router": "lb1", "invalid_drops": invalid[v]},
                              {"router": "lb2", "invalid_drops": 0}]} for v in broken}
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


def test_a_variant_left_out_with_only_is_a_skipped_claim():
    data = raw({"symmetric": 0, "stateless": 0}, {"symmetric": 0, "stateless": 0})
    claims = {c.id: c for c in EXPERIMENT.claims(P, EXPERIMENT.analyse(P, data))}
    assert claims["independent-breaks"].skipped == "needs variant independent (not run)"
    assert claims["symmetric-breaks-none"].holds
