"""hol-and-buffering: the model against hand-computed values, the parameters' checks, the
nftables rule and its counters, the memory-limit files, and every claim on synthetic raw
data, holding on data that behaves as predicted and failing with its failure injected."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from experiments.hol_buffering import EXPERIMENT, model
from experiments.hol_buffering.analysis import analyse
from experiments.hol_buffering.claims import claims
from experiments.hol_buffering.lab import loss_ruleset, nft_counters
from experiments.hol_buffering.memlimit import MemoryLimit, detect
from experiments.hol_buffering.params import Params, quick
from lblab.errors import MissingCapability, UsageError
from lblab.raw import Raw

P = quick()
MIB = 1 << 20


# -- the model, by hand --------------------------------------------------------------------
def test_segments_by_hand():
    assert model.h1_segments(4096) == 3                    # 4284 / 1448 = 2.96
    assert model.h1_segments(1448 - 188) == 1
    assert model.h2_segments(4096, 4) == [3, 6, 9, 12]     # j x 4238 / 1448 = 2.9, 5.9, ...
    assert model.h2_segments(1448 - 142, 3) == [1, 2, 3]


def test_stall_probabilities_by_hand():
    assert model.stall_h1(0.02, 4096) == pytest.approx(1 - 0.98 ** 3)
    assert model.stall_h2(0.02, 4096, 4) == pytest.approx(
        (4 - 0.98 ** 3 - 0.98 ** 6 - 0.98 ** 9 - 0.98 ** 12) / 4)
    # the shared connection is always worse than a stream's own one, from S = 2 on
    assert model.stall_h2(0.02, 4096, 2) > model.stall_h1(0.02, 4096)


def test_h2_round_sd_by_hand():
    # k = [1, 2]: first loss in segment 1 stalls both (F = 1), in segment 2 one (F = 1/2)
    p = 0.1
    mean = p * 1 + (1 - p) * p * 0.5
    second = p * 1 + (1 - p) * p * 0.25
    assert model.h2_round_sd(p, 1448 - 142, 2) == pytest.approx(math.sqrt(second - mean ** 2))
    assert model.h2_tolerance(p, 1448 - 142, 2, 100) == pytest.approx(
        3 * math.sqrt(second - mean ** 2) / 10)


def test_slow_stream_prediction_by_hand():
    absorbed = 4194304 + 6291456 + 16384 + 65535
    assert model.absorbed_bytes(16384, 4194304, 6291456) == absorbed
    assert model.siblings_blocked(absorbed + 1, 16384, 4194304, 6291456, shared=True) == 1.0
    # an upload the path can absorb never stops the demuxer; own connections never wait
    assert model.siblings_blocked(absorbed, 16384, 4194304, 6291456, shared=True) == 0.0
    assert model.siblings_blocked(10 * absorbed, 16384, 4194304, 6291456, shared=False) == 0.0


def test_buffering_predictions_by_hand():
    assert model.tier_kill_upload(int(2.5 * 8 * MIB), 8 * MIB) == 3
    assert model.tier_kill_upload(int(0.4 * 8 * MIB), 8 * MIB) == 1
    assert model.haproxy_bound_bytes(5, 16384) == 5 * 2 * 2 * 16384


# -- parameters ----------------------------------------------------------------------------
@pytest.mark.parametrize("changes, field", [
    ({"headroom_bodies": 3.0}, "headroom_bodies"),
    ({"uploads": 2}, "uploads"),
    ({"sink_mib_s": 100.0}, "sink_mib_s"),
    ({"variants": ()}, "variants"),
    ({"siblings": 40}, "siblings"),
])
def test_bad_parameters_name_the_field(changes, field):
    with pytest.raises(UsageError, match=f"^{field}"):
        dataclasses.replace(P, **changes)


def test_mitigation_settings_follow_the_parameters():
    assert P.conc_limit == 2 and P.max_body == P.body_bytes // 2
    assert P.headroom_bytes == int(2.5 * 8 * MIB)


def test_plan_names_every_variant():
    names = [v.name for v in EXPERIMENT.variants(Params())]
    assert names == ["loss-h2", "loss-h2@0.5", "loss-h2@5", "loss-h1", "loss-h1@0.5",
                     "loss-h1@5", *Params().variants[2:]]
    assert all(v.seconds > 0 for v in EXPERIMENT.variants(P))


# -- nftables ------------------------------------------------------------------------------
def test_loss_rule_threshold():
    text = loss_ruleset("10.0.0.1", 2.5)
    assert "numgen random mod 10000 < 250 counter drop" in text
    assert "ip saddr 10.0.0.1 tcp sport 80 counter\n" in text


def test_nft_counters_from_json():
    listing = {"nftables": [
        {"metainfo": {}}, {"table": {"name": "lblab_hol"}},
        {"rule": {"expr": [{"match": {}}, {"counter": {"packets": 1000, "bytes": 9}}]}},
        {"rule": {"expr": [{"match": {}}, {"numgen": {}},
                           {"counter": {"packets": 21, "bytes": 9}}, {"drop": None}]}}]}
    assert nft_counters(listing) == (1000, 21)


# -- the memory limit's files --------------------------------------------------------------
def test_detect_v1_and_v2(tmp_path):
    with pytest.raises(MissingCapability):
        detect(tmp_path)
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert detect(tmp_path) == ("v1", tmp_path / "memory")
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    assert detect(tmp_path) == ("v2", tmp_path)


@pytest.mark.parametrize("version, events", [
    ("v1", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
    ("v2", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n"),
])
def test_oom_kills_are_read_from_the_kernel_file(tmp_path, version, events):
    limit = MemoryLimit("lblab-test", version, tmp_path)
    limit.dir.mkdir()  # what Lab.cgroup does for a real one
    (limit.dir / limit.files["events"]).write_text(events)
    assert limit.oom_kills() == 2
    assert limit.record(100)["old"] == "(no such cgroup)"


# -- synthetic raw data --------------------------------------------------------------------
def loss_rows(p: Params, mode: str, *, hol: bool = True, stall_ms: float = 210.0,
              seed: int = 1) -> list[dict]:
    """Rounds as the model has them: each segment lost with probability p; on h2 (hol) the
    j-th stream stalls when the round's first loss is at or before k_j, on h1 (or without
    head-of-line blocking) when one of its own segments is lost."""
    rng = random.Random(seed)
    q = p.loss_pct / 100
    ks = model.h2_segments(p.response_bytes, p.streams)
    own = model.h1_segments(p.response_bytes)
    rows = []
    for r in range(p.rounds):
        first = next((x for x in range(1, ks[-1] + 1) if rng.random() < q), ks[-1] + 1)
        for j in range(p.streams):
            if mode == "h2" and hol:
                stalled = ks[j] >= first
            else:
                stalled = any(rng.random() < q for _ in range(own))
            rows.append({"round": r, "stream": j, "t_s": r * 0.02,
                         "completion_ms": stall_ms if stalled else 4.0,
                         "conn_bytes": 4238 * (j + 1), "body_bytes": p.response_bytes,
                         "status": 200})
    return rows


def loss_docs(seen: int = 20000, dropped: int | None = None) -> dict:
    return {"loss": {"seen": seen, "loss_pct": P.loss_pct, "dropped": round(seen * P.loss_pct / 100)
                     if dropped is None else dropped, "proxy_sysctls": {}},
            "haproxy-frontend": {"h2_headers_rcvd": 100}}


def uploads(outcomes: list[tuple[str, int | None]]) -> list[dict]:
    return [{"upload": k, "start_s": k * P.every_s, "sent_s": None, "done_s": 0.6 + k,
             "status": status, "outcome": outcome, "error": ""}
            for k, (outcome, status) in enumerate(outcomes)]


def tier_docs(oom_kills: int) -> dict:
    return {"memory-limit": {"version": "v1", "rest_bytes": MIB, "limit_bytes":
                             MIB + P.headroom_bytes, "headroom_bytes": P.headroom_bytes},
            "tier": {"oom_kills": oom_kills, "exit_code": -9 if oom_kills else None,
                     "peak_bytes": MIB + P.headroom_bytes}}


def memory(alive_until: float | None) -> list[dict]:
    return [{"t": t / 10, "usage_bytes": MIB + int(t / 10 * 8 * MIB),
             "oom_kills": int(alive_until is not None and t / 10 >= alive_until),
             "alive": alive_until is None or t / 10 < alive_until} for t in range(20)]


BUFFERS = {"l7s": {"tcp_wmem": 4194304, "tcp_rmem": 6291456},
           "b1": {"tcp_wmem": 4194304, "tcp_rmem": 6291456}}


def slow_rows(p: Params, *, blocked: int) -> list[dict]:
    """The upload, then siblings during the pause: the first `blocked` answered only at its
    end, the others at once."""
    pause = p.slow_pause_ms / 1000
    rows = [{"kind": "upload", "stream": 0, "sent_s": 0.001, "done_s": pause + 0.6,
             "completion_ms": (pause + 0.6) * 1000, "status": 200}]
    for k in range(p.siblings):
        sent = p.sibling_start_s + k * p.sibling_every_s
        done = pause + 0.012 if k < blocked else sent + 0.002
        rows.append({"kind": "sibling", "stream": k + 1, "sent_s": sent, "done_s": done,
                     "completion_ms": (done - sent) * 1000, "status": 200})
    return rows


def slow_doc(p: Params = P) -> dict:
    return {"slow": {"pause_s": p.slow_pause_ms / 1000, "buffers": BUFFERS,
                     "bufsize": p.bufsize, "stream_window": 65535}}


def healthy(p: Params = P) -> dict:
    c, k = p.uploads, model.tier_kill_upload(p.headroom_bytes, p.body_bytes)
    return {
        "tables": {
            "loss-h2": {"streams": loss_rows(p, "h2")},
            "loss-h1": {"streams": loss_rows(p, "h1")},
            "slow-h2": {"slow": slow_rows(p, blocked=p.siblings)},
            "slow-h1": {"slow": slow_rows(p, blocked=0)},
            "buffer-haproxy": {"uploads": uploads([("ok", 200)] * c),
                               "memory": [{"t": 0.1 * i, "rss_bytes": 15 * MIB + 4096 * i,
                                           "pool_used_bytes": 10 ** 5 + 4096 * i,
                                           "curr_conns": c} for i in range(10)]},
            "buffer-tier": {"uploads": uploads([("reset", None)] * k
                                               + [("refused", None)] * (c - k)),
                            "memory": memory(0.55)},
            "buffer-max-body": {"uploads": uploads([("ok", 413)] * c), "memory": memory(None)},
            "buffer-conc-limit": {"uploads": uploads([("ok", 200)] * p.conc_limit
                                                     + [("ok", 503)] * (c - p.conc_limit)),
                                  "memory": memory(None)},
        },
        "docs": {
            "loss-h2": loss_docs(), "loss-h1": loss_docs(),
            "slow-h2": slow_doc(p), "slow-h1": slow_doc(p),
            "buffer-haproxy": {"haproxy-before": {"rss_bytes": 15 * MIB,
                                                  "pool_used_bytes": 10 ** 5}},
            "buffer-tier": tier_docs(1), "buffer-max-body": tier_docs(0),
            "buffer-conc-limit": tier_docs(0),
        }}


def verdicts(data: dict, p: Params = P) -> dict[str, bool]:
    raw = Raw.of(tables=data["tables"], docs=data["docs"])
    return {c.id: c.holds for c in claims(p, analyse(p, raw))}


ALL = {"loss-rate", "h2-stalled-share", "h1-stalled-share", "stall-floor",
       "slow-h2-siblings-wait", "slow-h1-siblings-free", "haproxy-memory",
       "haproxy-uploads", "tier-oom-at", "tier-oom-kill", "max-body-refuses",
       "max-body-no-oom", "conc-limit-refuses", "conc-limit-no-oom"}


def test_every_claim_holds_on_data_that_behaves_as_predicted():
    p = dataclasses.replace(P, rounds=200)
    got = verdicts(healthy(p), p)
    assert set(got) == ALL
    assert all(got.values()), {k: v for k, v in got.items() if not v}


def _inject(data: dict, variant: str, kind: str, value) -> dict:
    data[kind][variant].update(value)
    return data


@pytest.mark.parametrize("claim, failure", [
    ("loss-rate", lambda d: _inject(d, "loss-h2", "docs", loss_docs(dropped=800))),
    ("h2-stalled-share", lambda d: _inject(d, "loss-h2", "tables",
                                           {"streams": loss_rows(P, "h2", hol=False)})),
    ("h1-stalled-share", lambda d: _inject(d, "loss-h1", "tables",
                                           {"streams": loss_rows(P, "h2")})),
    ("stall-floor", lambda d: _inject(d, "loss-h1", "tables",
                                      {"streams": loss_rows(P, "h1", stall_ms=120.0)})),
    ("slow-h2-siblings-wait", lambda d: _inject(d, "slow-h2", "tables",
                                                {"slow": slow_rows(P, blocked=1)})),
    ("slow-h1-siblings-free", lambda d: _inject(d, "slow-h1", "tables",
                                                {"slow": slow_rows(P, blocked=P.siblings)})),
    ("haproxy-memory", lambda d: _inject(d, "buffer-haproxy", "tables", {"memory": [
        {"t": 0.1 * i, "rss_bytes": 15 * MIB + i * 8 * MIB, "pool_used_bytes": 1,
         "curr_conns": 4} for i in range(4)]})),
    ("haproxy-uploads", lambda d: _inject(d, "buffer-haproxy", "tables", {
        "uploads": uploads([("ok", 200)] * (P.uploads - 1) + [("reset", None)])})),
    ("tier-oom-at", lambda d: _inject(d, "buffer-tier", "tables", {
        "uploads": uploads([("reset", None)] * 2 + [("refused", None)] * (P.uploads - 2))})),
    ("tier-oom-kill", lambda d: _inject(d, "buffer-tier", "docs", tier_docs(0))),
    ("max-body-refuses", lambda d: _inject(d, "buffer-max-body", "tables",
                                           {"uploads": uploads([("ok", 200)] * P.uploads)})),
    ("max-body-no-oom", lambda d: _inject(d, "buffer-max-body", "docs", tier_docs(1))),
    ("conc-limit-refuses", lambda d: _inject(d, "buffer-conc-limit", "tables", {
        "uploads": uploads([("reset", None)] * P.uploads)})),
    ("conc-limit-no-oom", lambda d: _inject(d, "buffer-conc-limit", "docs", tier_docs(1))),
])
def test_each_claim_fails_with_its_failure_injected(claim, failure):
    got = verdicts(failure(healthy()))
    assert got[claim] is False
    assert sum(not v for v in got.values()) == 1, {k: v for k, v in got.items() if not v}


def test_a_loss_sweep_adds_a_variant_and_a_claim_per_rate():
    p = dataclasses.replace(P, sweep_pcts=(0.5, 2.0, 5.0), rounds=200)
    names = [v.name for v in EXPERIMENT.variants(p)]
    assert names[:6] == ["loss-h2", "loss-h2@0.5", "loss-h2@5", "loss-h1", "loss-h1@0.5",
                         "loss-h1@5"]
    data = healthy(p)
    for name in ("loss-h2@5", "loss-h1@5"):
        at5 = dataclasses.replace(p, loss_pct=5.0)
        data["tables"][name] = {"streams": loss_rows(at5, name[5:7])}
        data["docs"][name] = {"loss": {"seen": 20000, "dropped": 1000, "loss_pct": 5.0}}
    got = {c.id: c for c in claims(p, analyse(p, Raw.of(tables=data["tables"],
                                                        docs=data["docs"])))}
    assert got["h2-stalled-share@5"].holds and got["h1-stalled-share@5"].holds
    assert got["h2-stalled-share@5"].predicted == pytest.approx(model.stall_h2(0.05, 4096, 16))
    assert got["h2-stalled-share@0.5"].skipped  # not run


def test_claims_are_skipped_for_variants_not_run():
    data = healthy()
    for kind in ("tables", "docs"):
        for name in ("loss-h2", "buffer-tier"):
            data[kind].pop(name)
    raw = Raw.of(tables=data["tables"], docs=data["docs"])
    got = {c.id: c for c in claims(P, analyse(P, raw))}
    assert got["h2-stalled-share"].skipped and got["tier-oom-at"].skipped
    assert got["h1-stalled-share"].holds and not got["loss-rate"].skipped


def test_h2_predictions_are_far_apart_at_the_default_loss():
    """What the experiment shows: the shared connection stalls several times more streams."""
    p = Params()
    assert model.stall_h2(p.loss_pct / 100, p.response_bytes, p.streams) > \
        5 * model.stall_h1(p.loss_pct / 100, p.response_bytes)
