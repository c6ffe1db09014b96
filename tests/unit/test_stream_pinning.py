"""stream-pinning: the model against hand-computed values, the parameters' validation, and
analyse + claims on synthetic raw data: for every claim a run where it holds and one with
the failure injected where it does not."""

from __future__ import annotations

import math
import random

import pytest

from experiments.stream_pinning import EXPERIMENT, model
from experiments.stream_pinning.params import (
    LOSS,
    LOSS_BACKOFF,
    MAX_AGE,
    NO_JITTER,
    PINNED,
    UNARY,
    balanced_by,
    quick,
)
from lblab.errors import UsageError
from lblab.params import apply_overrides
from lblab.raw import Raw

P = quick()  # N=3, M=2, K=60, t1=2, tau=4, A=6, G=1, t_loss=2, backoff 2, samples 0.5 s
OLD, NEW = ["b1", "b2", "b3"], ["b4", "b5"]


# -- the model ----------------------------------------------------------------------------
def test_pinned_share_follows_the_exponential():
    assert model.pinned_share(P, 0) == 0
    assert model.pinned_share(P, 4.0) == pytest.approx(0.4 * (1 - math.exp(-1)))  # 0.25285
    assert model.pinned_share(P, 1e6) == pytest.approx(0.4)


def test_first_wave_is_uniform_over_the_jittered_ages():
    # A = 6, G = 1, jitter 0.1: the first wave ends over [6.4, 7.6]
    assert model.first_wave_done(P, 6.4, 0.1) == 0
    assert model.first_wave_done(P, 7.0, 0.1) == pytest.approx(0.5)
    assert model.first_wave_done(P, 7.6, 0.1) == pytest.approx(1)
    assert model.first_wave_done(P, 6.99, 0.0) == 0 and model.first_wave_done(P, 7.0, 0.0) == 1
    assert model.max_age_share(P, 7.0) == pytest.approx(0.2)


def test_sliding_peak_counts_the_fullest_window():
    assert model.sliding_peak([], 0.25) == 0
    assert model.sliding_peak([0.0, 0.1, 0.24, 0.25, 1.0], 0.25) == 3
    assert model.sliding_peak([5.0] * 7, 0.1) == 7


def test_peak_bound():
    assert model.peak_bound(10, 0.1, 0.25) == 10  # all inside one window
    b = model.peak_bound(60, 1.2, 0.25)
    # 60 uniform over 1.2 s: 12.5 expected per window; the 99.7 % peak is well above, below 60
    assert 60 * 0.25 / 1.2 < b < 30
    assert model.peak_bound(60, 1.2, 0.25) == b  # seeded
    assert model.peak_bound(60, 12.0, 0.25) < b


def test_predictions_from_the_parameters():
    assert model.jitter_spread_s(P) == pytest.approx(1.2)
    assert model.mean_reconnect_rate(P) == pytest.approx(50)
    assert model.lost_streams(P) == 20
    assert balanced_by(P, 0.1) == pytest.approx(2 + 6.6 + 1)
    assert balanced_by(P, 0.0) == pytest.approx(9)


# -- parameters -------------------------------------------------------------------------
@pytest.mark.parametrize("sets, field", [
    (["t1=100"], "pinned_s"), (["age_s=1"], "t1"), (["open_rate=10"], "open_rate"),
    (["streams=2", "backends=3"], "streams"), (["peak_window_s=2"], "age_s"),
    (["variants=pinned,nope"], "variants"), (["backends=0"], "backends"),
])
def test_bad_parameters_are_one_line_usage_errors(sets, field):
    with pytest.raises(UsageError, match=field) as err:
        apply_overrides("stream-pinning", P, sets)
    assert "\n" not in str(err.value)


def test_variants_plan_with_their_settings():
    plans = EXPERIMENT.variants(P)
    assert [v.name for v in plans] == [PINNED, UNARY, MAX_AGE, NO_JITTER, LOSS, LOSS_BACKOFF]
    s = {v.name: v.setting for v in plans}
    assert s[MAX_AGE].age_mode == "grpc" and s[MAX_AGE].jitter == 0.1
    assert s[NO_JITTER].age_mode == "app" and s[NO_JITTER].jitter == 0
    assert s[LOSS_BACKOFF].reconnect == "backoff" and s[UNARY].kind == "unary"
    assert sum(v.seconds for v in plans) + EXPERIMENT.bring_up_s < 90


# -- synthetic raw data ------------------------------------------------------------------
def timeline(what: str, t: float) -> dict:
    return {"origin_wall": 1.0, "events": [{"what": what, "at": t, "fired": t}],
            "problems": []}


def spread(n: int, n_new: int) -> dict[str, int]:
    """n streams, n_new of them over the new backends, the rest over the old, evenly."""
    out = {b: n_new // 2 + (j < n_new % 2) for j, b in enumerate(NEW)}
    return out | {b: (n - n_new) // 3 + (j < (n - n_new) % 3) for j, b in enumerate(OLD)}


def samples(end: float, new_count, ws_new=None) -> list[dict]:
    """Samples every 0.5 s: K = 60 gRPC streams, `new_count(t)` of them on the new backends,
    and 30 WebSockets, half as many on the new ones (or `ws_new(t)`)."""
    rows = []
    for i in range(int(end / 0.5) + 1):
        t = i * 0.5
        n_ws = ws_new(t) if ws_new else round(new_count(t) / 2)
        grpc, ws = spread(60, new_count(t)), spread(30, n_ws)
        rows.append({"t": t, **{f"{b}_active_grpc": grpc[b] for b in OLD + NEW},
                     **{f"{b}_active_ws": ws[b] for b in OLD + NEW}})
    return rows


def stream(slot, gen, open_s, close_s, backend, outcome="ended") -> dict:
    return {"slot": slot, "gen": gen, "kind": "grpc", "open_s": open_s,
            "established_s": open_s + 0.005, "close_s": close_s, "backend": backend,
            "outcome": outcome, "reconnect_delay_s": 0.0}


def pinned_raw(lag: float = 0.0) -> dict:
    """New backends' count on the curve (lag: the same curve `lag` s late)."""
    return {"tables": {"samples": samples(12, lambda t: round(
        60 * model.pinned_share(P, t - 2 - lag))), "streams": [stream(k, 0, 0, 12, "b1")
                                                               for k in range(60)]},
            "docs": {"timeline": timeline("scale-out", 2.0)}}


def unary_raw(new_ok: bool = True) -> dict:
    backends = OLD + NEW
    calls, counters = [], {b: 0 for b in backends}
    rows = []
    for i in range(500):  # 100 per second for 5 s
        t = i / 100
        pool = backends if (t >= 2 and new_ok) else OLD
        b = pool[i % len(pool)]
        counters[b] += 1
        calls.append({"id": i, "intended_s": t, "sent_s": t, "latency_ms": 1.0, "backend": b,
                      "outcome": "ok"})
        if i % 50 == 49:
            rows.append({"t": (i + 1) / 100, **{f"{k}_calls": c for k, c in counters.items()}})
    return {"tables": {"calls": calls, "samples": rows},
            "docs": {"timeline": timeline("scale-out", 2.0),
                     "backends-before": {f"{b}_calls": 0 for b in backends}}}


def max_age_raw(jitter: float, balance: bool = True, seed: int = 3) -> dict:
    """The first wave ends at age A U(1 - j, 1 + j) + G; each reopens on a backend by
    rotation over all five (or over the old three only when balance is False)."""
    rng = random.Random(seed)
    pool = OLD + NEW if balance else OLD
    streams, ends = [], []
    for k in range(60):
        end = 6 * rng.uniform(1 - jitter, 1 + jitter) + 1 if jitter else 7.0 + k * 0.001
        ends.append(end)
        streams += [stream(k, 0, k / 1000, end, OLD[k % 3]),
                    stream(k, 1, end + 0.003, 12, pool[k % len(pool)], "run_end")]

    def on_new(t: float) -> int:
        return sum(1 for k, e in enumerate(ends) if e < t and pool[k % len(pool)] in NEW)

    return {"tables": {"samples": samples(12, on_new), "streams": streams},
            "docs": {"timeline": timeline("scale-out", 2.0)}}


def loss_raw(backoff: bool, reconnect: bool = True, spread: float | None = None) -> dict:
    rng = random.Random(5)
    streams = []
    for k in range(60):
        b = OLD[k % 3]
        if b != "b1":
            streams.append(stream(k, 0, 0, 7, b, "run_end"))
            continue
        streams.append(stream(k, 0, 0, 2.001, b, "UNAVAILABLE"))
        delay = rng.uniform(0, spread if spread is not None else 2.0) if backoff else 0.01
        if reconnect:
            streams.append(stream(k, 1, 2.001 + delay, 7, OLD[1 + k % 2], "run_end"))
    return {"tables": {"streams": streams, "samples": samples(7, lambda t: 0)},
            "docs": {"timeline": timeline("kill", 2.0)}}


def with_samples(data: dict, rows: list[dict]) -> dict:
    return {**data, "tables": {**data["tables"], "samples": rows}}


def good() -> dict:
    return {PINNED: pinned_raw(), UNARY: unary_raw(), MAX_AGE: max_age_raw(0.1),
            NO_JITTER: max_age_raw(0.0), LOSS: loss_raw(False), LOSS_BACKOFF: loss_raw(True)}


def verdicts(variants: dict) -> dict[str, str]:
    raw = Raw.of(tables={n: d["tables"] for n, d in variants.items()},
                 docs={n: d["docs"] for n, d in variants.items()})
    return {c.id: c.verdict for c in EXPERIMENT.claims(P, EXPERIMENT.analyse(P, raw))}


def test_every_claim_holds_on_a_run_that_behaves_as_predicted():
    got = verdicts(good())
    assert len(got) == 18
    assert all(v == "holds" for v in got.values()), got


@pytest.mark.parametrize("variant, broken, failing", [
    (PINNED, pinned_raw(lag=4.0), {"pinned-share-at-tau", "ws-pinned-share"}),
    (PINNED, with_samples(pinned_raw(), samples(12, lambda t: round(
        60 * model.pinned_share(P, t - 2)), ws_new=lambda t: 0)), {"ws-pinned-share"}),
    (PINNED, with_samples(pinned_raw(), samples(12, lambda t: 0)),  # the new ones stay idle
     {"pinned-share-at-tau", "pinned-share-end", "ws-pinned-share"}),
    (PINNED, with_samples(pinned_raw(), samples(12, lambda t: 24 if t > 2 else 0)),
     {"pinned-vs-unary"}),  # balanced at once, as if not pinned
    (UNARY, unary_raw(new_ok=False), {"unary-share", "unary-share-first-second"}),
    (MAX_AGE, max_age_raw(0.1, balance=False), {"max-age-balanced", "ws-max-age-share"}),
    (MAX_AGE, max_age_raw(0.0), {"jitter-peak"}),
    (MAX_AGE, with_samples(max_age_raw(0.1), [
        dict(r, b4_active_grpc=1, b1_active_grpc=r["b1_active_grpc"] - 1) if 3 <= r["t"] <= 4
        else r for r in max_age_raw(0.1)["tables"]["samples"]]),
     {"pinned-without-lifetime"}),  # a stream on a new backend before any aged out
    (NO_JITTER, max_age_raw(0.1), {"no-jitter-peak"}),
    (NO_JITTER, max_age_raw(0.0, balance=False), {"max-age-no-jitter-balanced"}),
    (LOSS, loss_raw(False, reconnect=False), {"backend-loss-reconnected-1s",
                                              "backend-loss-peak"}),
    (LOSS, loss_raw(True), {"backend-loss-reconnected-1s", "backend-loss-peak"}),
    (LOSS_BACKOFF, loss_raw(False), {"backend-loss-backoff-peak"}),
    (LOSS_BACKOFF, loss_raw(True, spread=4.0), {"backend-loss-backoff-within"}),
    (LOSS_BACKOFF, loss_raw(True, reconnect=False), {"backend-loss-backoff-within"}),
])
def test_each_claim_fails_when_its_failure_is_injected(variant, broken, failing):
    got = verdicts({**good(), variant: broken})
    assert {k for k, v in got.items() if v == "does not hold"} == failing, got


def test_broken_count_claim_fails_when_the_dead_backend_held_too_many():
    raw = loss_raw(False)
    streams = [dict(r, backend="b1", close_s=2.001, outcome="UNAVAILABLE") if r["gen"] == 0
               else r for r in raw["tables"]["streams"]]
    got = verdicts({**good(), LOSS: {**raw, "tables": {**raw["tables"], "streams": streams}}})
    assert got["backend-loss-broken"] == "does not hold"


def test_claims_of_variants_not_run_are_skipped():
    got = verdicts({UNARY: unary_raw()})
    assert got["unary-share"] == "holds"
    assert got["pinned-vs-unary"].startswith("skipped") and \
        got["jitter-peak"].startswith("skipped")
    assert len(got) == 18


def test_websocket_claims_are_skipped_without_websockets():
    p = apply_overrides("stream-pinning", P, ["ws_streams=0"])
    raw = Raw.of(tables={n: d["tables"] for n, d in good().items()},
                 docs={n: d["docs"] for n, d in good().items()})
    got = {c.id: c.verdict for c in EXPERIMENT.claims(p, EXPERIMENT.analyse(p, raw))}
    assert got["ws-pinned-share"] == got["ws-max-age-share"] == "skipped: ws_streams=0"
    assert got["pinned-share-at-tau"] == "holds"


def test_time_to_rebalance_predicted_from_the_parameters():
    tol = 3 * math.sqrt(0.4 * 0.6 / 60)  # 0.1897
    assert model.rebalance_s(P, PINNED) == pytest.approx(4 * math.log(0.4 / tol))  # 2.98
    assert model.rebalance_s(P, UNARY) == 0
    assert model.rebalance_s(P, MAX_AGE) == pytest.approx(5.4 + 1 + 1.2 * (1 - tol / 0.4) - 2)
    assert model.rebalance_s(P, NO_JITTER) == pytest.approx(5.0)


def test_measured_time_to_rebalance():
    raw = Raw.of(tables={n: d["tables"] for n, d in good().items()},
                 docs={n: d["docs"] for n, d in good().items()})
    v = EXPERIMENT.analyse(P, raw).variants
    assert v[UNARY]["rebalance_s"] < 1
    assert v[PINNED]["rebalance_s"] == pytest.approx(model.rebalance_s(P, PINNED), abs=0.6)
    assert v[NO_JITTER]["rebalance_s"] == pytest.approx(5.0, abs=0.5)
    stuck = verdicts_analysis({**good(), PINNED: with_samples(pinned_raw(), samples(
        12, lambda t: 0))})
    assert stuck[PINNED]["rebalance_s"] is None


def verdicts_analysis(variants: dict) -> dict:
    raw = Raw.of(tables={n: d["tables"] for n, d in variants.items()},
                 docs={n: d["docs"] for n, d in variants.items()})
    return EXPERIMENT.analyse(P, raw).variants
