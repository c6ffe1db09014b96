"""retry-storm: backends slow from 100 ms to 2 s; clients with a 1 s timeout retry.

Wiring (topologies/two_tier.py): c1 -> s1 -> l7 (HAProxy, no retries) or l7r (HAProxy that
itself retries on response-timeout and 503) -> s2 -> b1..bB. Backends have W workers, a
queue of Q, and keep working on requests their clients abandoned. The client is open loop at
`rate` requests/s. At t1 every backend's service time becomes `slow_ms`; at t2 it returns.

Variants (client retry policy, and which proxy):
  none          no retries
  naive         up to k immediate retries on timeout or 5xx
  layered       naive client retries through the retrying proxy: the layers multiply
  backoff       exponential backoff with full jitter
  budget-10     retries limited to 10 % of recent requests (Finagle/Envoy style)
  budget-20     ... 20 %
  token-bucket  gRPC retry throttling (maxTokens 10, tokenRatio 0.1)
  breaker       circuit breaker: open after 5 consecutive failures, half-open after a cooldown

Claims (from this run's parameters): amplification (backend arrivals / offered) during the
slowdown is 1 + k for naive retries (the note: 10,000 QPS becomes 20,000 with one retry) and
(1 + k)(1 + k_proxy) when both layers retry; a budget of r keeps it at or below 1 + r; the
breaker opens after exactly `breaker_threshold` consecutive failures and probes only after its
cooldown; with budgets and breakers load and latency are back to normal within the time the
backends need to drain their queues of slow work.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from lblab import claims as C
from lblab import plots
from lblab.experiment import Outcome, RunContext
from lblab.lab import Lab
from lblab.params import param
from lblab.ready import wait_until
from lblab.results import read_csv, write_csv, write_json
from lblab.sampler import Sampler, counter_delta
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client, start_backend
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, lb_front_ip

NAME = "retry-storm"
TITLE = "Retry storms: amplification, budgets, breakers and recovery"
SUMMARY = ("Slows every backend from 100 ms to 2 s under clients with a 1 s timeout and "
           "compares naive, layered, backoff, budgeted, token-bucket and breaker retries.")
NEEDS = ("root", "ovs_running", "haproxy")
VARIANTS = ("none", "naive", "layered", "backoff", "budget-10", "budget-20", "token-bucket",
            "breaker")
BIN_S = 1.0
CLIENT_BOOT_S = 1.5
"""Seconds allowed for the client process to start before its schedule begins."""


@dataclass(frozen=True)
class Params:
    rate: float = param(60.0, "offered requests per second (open loop)", min=5, max=500)
    backends: int = param(3, "backends behind the proxy", min=1, max=8)
    workers: int = param(8, "workers per backend", min=1, max=256)
    queue: int = param(16, "queue limit per backend (then 503)", min=0, max=10_000)
    normal_ms: float = param(100.0, "service time before t1 and after t2", min=1, max=10_000)
    slow_ms: float = param(2000.0, "service time between t1 and t2", min=1, max=60_000)
    timeout_s: float = param(1.0, "client timeout", min=0.05, max=30)
    retries: int = param(1, "k: client retries (naive, layered, backoff, budgets)", min=1,
                         max=5)
    proxy_retries: int = param(1, "HAProxy retries in the layered variant", min=1, max=5)
    budget_min_per_s: float = param(0.0, "retry budget floor (retries/s on top of the ratio)",
                                    min=0, max=100)
    budget_window_s: float = param(10.0, "the budget's sliding window (Finagle's TTL: 10 s)",
                                   min=0.5, max=120)
    breaker_threshold: int = param(5, "consecutive failures that open the breaker", min=1,
                                   max=100)
    breaker_cooldown_s: float = param(1.0, "seconds before the breaker half-opens", min=0.1,
                                      max=60)
    t1: float = param(5.0, "seconds until the slowdown", min=1, max=600)
    t2: float = param(17.0, "seconds until service time is back to normal", min=2, max=600)
    end: float = param(30.0, "seconds of load in all", min=3, max=1200)
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)

    def validate(self) -> str | None:
        if not self.t1 < self.t2 < self.end:
            return "need t1 < t2 < end"
        if self.t2 - self.t1 < 2 * self.timeout_s + max(BIN_S, self.budget_window_s):
            return ("the slowdown (t2 - t1) must last at least 2 x timeout_s + the budget "
                    f"window = {2 * self.timeout_s + max(BIN_S, self.budget_window_s):g} s")
        need = self.t2 + drain_bound_s(self) + self.timeout_s
        if self.end < need:
            return (f"end must be at least t2 + drain bound + timeout = {need:g} s to see "
                    "recovery")
        return None


def quick() -> Params:
    """Every time constant halved or less (service 50 ms -> 1 s, timeout 0.5 s, budget window
    2 s, cooldown 0.5 s) so four variants fit in a minute; predictions follow the params."""
    return Params(normal_ms=50.0, slow_ms=1000.0, timeout_s=0.5, budget_window_s=2.0,
                  breaker_cooldown_s=0.5, queue=8, t1=1.5, t2=5.0, end=9.0,
                  variants=("naive", "layered", "budget-10", "breaker"))


def policy_for(p: Params, variant: str) -> dict:
    k = p.retries
    return {
        "none": {"kind": "none"},
        "naive": {"kind": "naive", "retries": k},
        "layered": {"kind": "naive", "retries": k},
        "backoff": {"kind": "backoff", "retries": k, "base_s": 0.1, "cap_s": 2.0},
        "budget-10": {"kind": "budget", "ratio": 0.1, "retries": k,
                      "min_per_s": p.budget_min_per_s, "window_s": p.budget_window_s},
        "budget-20": {"kind": "budget", "ratio": 0.2, "retries": k,
                      "min_per_s": p.budget_min_per_s, "window_s": p.budget_window_s},
        "token-bucket": {"kind": "token_bucket", "max_tokens": 10, "token_ratio": 0.1,
                         "retries": k},
        "breaker": {"kind": "breaker", "threshold": p.breaker_threshold,
                    "cooldown_s": p.breaker_cooldown_s},
    }[variant]


def proxy_timeout_ms(p: Params) -> int:
    """The retrying proxy gives up on a server early enough that all its attempts fit in
    the client's timeout (90 % of it), so its 504 reaches the client in time to be retried."""
    return int(p.timeout_s * 900 / (1 + p.proxy_retries))


def drain_bound_s(p: Params) -> float:
    """Time for a backend to finish the slow work it holds at t2 (W busy + Q queued, each
    taking slow_ms on one of W workers), plus the breaker's cooldown and one bin."""
    return math.ceil((p.workers + p.queue) / p.workers) * p.slow_ms / 1000 \
        + p.breaker_cooldown_s + BIN_S


def run(ctx: RunContext) -> Outcome:
    p: Params = ctx.params
    topo = TwoTierTopo(clients=1, lb_names="l7,l7r", backends=p.backends)
    servers = tuple(Server(f"b{i}", backend_ip(i), 8080) for i in range(1, p.backends + 1))
    variants: dict[str, dict] = {}
    series: list[dict] = []
    events: dict[str, list] = {}
    ctx.step("bringing the lab up")
    with Lab(ctx.lab_name, topo, log_dir=ctx.folder.path("logs")) as lab:
        handles = [start_backend(lab, f"b{i}", backend_ip(i), port=8080, workers=p.workers,
                                 queue_limit=p.queue, service_ms=p.normal_ms,
                                 service_dist="constant", seed=ctx.seed + i)
                   for i in range(1, p.backends + 1)]
        L7Node(lab, L7Config("l7", lb_front_ip(1), 80, servers)).start()
        L7Node(lab, L7Config("l7r", lb_front_ip(2), 80, servers, retries=p.proxy_retries,
                             retry_on="response-timeout 503", redispatch=True,
                             timeout_server_ms=proxy_timeout_ms(p))).start()
        for variant in p.variants:
            ctx.step(f"{variant}: {p.rate:g} req/s, slowdown {p.t1:g}-{p.t2:g} s of {p.end:g} s")
            for h in handles:
                h.set_faults(service_ms=p.normal_ms)
            wait_until(lambda: all(h.stats()["capacity"]["busy"] == 0
                                   and h.stats()["capacity"]["queued"] == 0 for h in handles),
                       timeout=p.slow_ms / 1000 * (p.queue / p.workers + 2) + 10,
                       what="backends to finish the previous variant's work")
            base = sum(h.stats()["capacity"]["arrived"] for h in handles)

            def probe(variant: str = variant, base: int = base) -> dict:
                stats = [h.stats()["capacity"] for h in handles]
                return {"variant": variant, "wall": time.time(),
                        "arrived": sum(s["arrived"] for s in stats) - base,
                        "rejected": sum(s["rejected"] for s in stats),
                        "busy": sum(s["busy"] for s in stats),
                        "queued": sum(s["queued"] for s in stats)}

            target = lb_front_ip(2 if variant == "layered" else 1)
            # One clock for all: the client starts its schedule at `origin` (after its process
            # has booted), and faults and backend samples are placed relative to it too.
            origin = time.time() + CLIENT_BOOT_S
            cfg = ClientConfig(targets=[f"http://{target}/"], rate=p.rate, duration_s=p.end,
                               arrival="poisson", timeout_s=p.timeout_s,
                               retry=policy_for(p, variant), seed=ctx.seed, keepalive=True,
                               start_at=origin)
            with Sampler(probe, 0.25) as sampler:
                faults = _schedule_faults(handles, p, origin)
                records, summary = run_client(lab, "c1", cfg, ctx.folder.path("raw"), variant)
                faults.join()
            samples = [{**s, "t": s["wall"] - origin} for s in sampler.rows
                       if s["wall"] >= origin]
            rows = _bins(p, variant, records, samples)
            series += rows
            variants[variant] = _metrics(p, rows, summary)
            events[variant] = summary.get("policy_events", [])
    write_csv(ctx.folder.path("timeline.csv"), series)
    write_json(ctx.folder.path("policy-events.json"), events)
    threshold = p.workers * p.timeout_s * 1000 / p.normal_ms
    notes = ["Metastability needs queueing delay above the timeout at normal speed, i.e. a "
             f"queue above W x timeout / service = {threshold:.0f} per backend, and a retried "
             f"load above capacity; this run's queue is {p.queue}, so naive retries recover "
             "once the slow work drains: measured, reported as it is."]
    return Outcome(variants=variants, claims=_claims(p, variants, events), notes=notes,
                   topology=plots.topology_of(topo, ROLES))


def _schedule_faults(handles: list, p: Params, origin: float):
    """A thread that slows every backend at origin + t1 and restores it at origin + t2."""
    import threading

    def apply() -> None:
        for at, ms in ((p.t1, p.slow_ms), (p.t2, p.normal_ms)):
            time.sleep(max(0.0, origin + at - time.time()))
            for h in handles:
                h.set_faults(service_ms=ms)

    thread = threading.Thread(target=apply, daemon=True)
    thread.start()
    return thread


def _bins(p: Params, variant: str, records: list[dict], samples: list[dict]) -> list[dict]:
    """Per-second rows: offered, backend arrivals, goodput, p99, amplification."""
    nbins = int(math.ceil(p.end / BIN_S))
    offered = [0] * nbins
    good = [0] * nbins
    latencies: list[list[float]] = [[] for _ in range(nbins)]
    final: dict[str, dict] = {}
    for r in records:
        final[r["id"]] = r
        if r["attempt"] == "0":
            offered[min(nbins - 1, int(float(r["intended_s"]) // BIN_S))] += 1
    for r in final.values():
        b = min(nbins - 1, int(float(r["intended_s"]) // BIN_S))
        if r["outcome"] == "ok":
            good[b] += 1
            latencies[b].append(float(r["latency_ms"]))
    arrivals = _rate_per_bin(samples, nbins)
    rows = []
    for b in range(nbins):
        lat = sorted(latencies[b])
        rows.append({"variant": variant, "t": b * BIN_S, "offered": offered[b],
                     "backend_arrivals": arrivals[b], "goodput": good[b],
                     "p99_ms": lat[int(0.99 * (len(lat) - 1))] if lat else "",
                     "amplification": arrivals[b] / offered[b] if offered[b] else ""})
    return rows


def _rate_per_bin(samples: list[dict], nbins: int) -> list[float]:
    """Backend arrivals per bin, interpolated from the cumulative counter samples."""
    return [counter_delta(samples, "arrived", b * BIN_S, (b + 1) * BIN_S) for b in range(nbins)]


def _window(p: Params, rows: list[dict], lo: float, hi: float, key: str) -> list[float]:
    return [float(r[key]) for r in rows if lo <= r["t"] and r["t"] + BIN_S <= hi
            and r[key] != ""]


def _metrics(p: Params, rows: list[dict], summary: dict) -> dict:
    lo = p.t1 + 2 * p.timeout_s  # after the first attempts and their retries have failed
    offered = sum(_window(p, rows, lo, p.t2, "offered"))
    arrived = sum(_window(p, rows, lo, p.t2, "backend_arrivals"))
    w_lo = p.t2 - max(BIN_S, p.budget_window_s)
    w_offered = sum(_window(p, rows, w_lo, p.t2, "offered"))
    w_arrived = sum(_window(p, rows, w_lo, p.t2, "backend_arrivals"))
    normal_p99 = statistics.median(_window(p, rows, 0, p.t1, "p99_ms") or [0])
    recovered = None
    for r in rows:
        if r["t"] < p.t2:
            continue
        later = [x for x in rows if x["t"] >= r["t"] and x["t"] + BIN_S <= p.end - p.timeout_s]
        if later and all(x["offered"] and x["goodput"] >= 0.95 * x["offered"]
                         and x["p99_ms"] != "" and float(x["p99_ms"]) <= 2 * normal_p99 + 50
                         for x in later):
            recovered = r["t"] - p.t2
            break
    counts = summary["counts"]
    return {"amplification_slowdown": arrived / offered if offered else None,
            "amplification_budget_window": w_arrived / w_offered if w_offered else None,
            "offered_slowdown": offered, "backend_arrivals_slowdown": arrived,
            "goodput_ratio": counts.get("ok", 0) / summary["requests"],
            "p50_ms": summary["latency_ms"].get("p50"), "p99_ms": summary["latency_ms"].get("p99"),
            "normal_p99_ms": normal_p99, "recovery_s": recovered,
            "attempts_per_request": summary["attempts"] / summary["requests"],
            "breaker_open_rejections": counts.get("breaker_open", 0)}


def _claims(p: Params, v: dict, events: dict) -> list[C.Claim]:
    k, kp = p.retries, p.proxy_retries
    out: list[C.Claim] = []
    if "naive" in v:
        out.append(C.within("naive-amplification",
                            f"{k} naive retr{'y' if k == 1 else 'ies'} multiplies "
                            f"backend load by 1 + k = {1 + k} during the slowdown (the note: "
                            "10,000 QPS becomes 20,000 with one retry)",
                            1 + k, v["naive"]["amplification_slowdown"], rel=0.10))
    if "layered" in v:
        out.append(C.within("layered-amplification",
                            f"Client ({k}) and proxy ({kp}) retries multiply: "
                            f"(1 + {k}) x (1 + {kp}) = {(1 + k) * (1 + kp)}",
                            (1 + k) * (1 + kp), v["layered"]["amplification_slowdown"],
                            rel=0.10))
    for name, ratio in (("budget-10", 0.1), ("budget-20", 0.2)):
        if name in v:
            bound = 1 + ratio + p.budget_min_per_s / p.rate
            out.append(C.at_most(f"{name}-amplification",
                                 f"A {ratio:.0%} retry budget keeps amplification at or below "
                                 f"1 + {ratio:g} + floor/rate = {bound:.3g} over its "
                                 f"{p.budget_window_s:g} s window (the last one of the "
                                 "slowdown)", bound, v[name]["amplification_budget_window"],
                                 note="over a shorter interval a sliding-window budget may "
                                      "spend credit earned earlier in its window"))
    if "breaker" in v:
        opens = [e for e in events.get("breaker", []) if e["state"] == "open"]
        out.append(C.near("breaker-opens-at-threshold",
                          f"The breaker opens after exactly {p.breaker_threshold} consecutive "
                          "failures (count at its first opening)", p.breaker_threshold,
                          opens[0]["failures"] if opens else None, 0))
        gaps = _open_to_probe_gaps(events.get("breaker", []))
        out.append(C.at_least("breaker-cooldown",
                              f"It probes (half-opens) only after its {p.breaker_cooldown_s:g} s "
                              "cooldown: shortest open -> half-open gap (s)",
                              p.breaker_cooldown_s, min(gaps) if gaps else None))
    for name in ("budget-10", "budget-20", "token-bucket", "breaker"):
        if name in v:
            bound = drain_bound_s(p)
            out.append(C.at_most(f"{name}-recovery",
                                 f"With {name}, load and latency are normal again within the "
                                 f"backends' drain time: ceil((W+Q)/W) x slow + cooldown + 1 s "
                                 f"= {bound:.3g} s after t2", bound, v[name]["recovery_s"],
                                 note="recovery: goodput >= 95 % of offered and p99 <= 2 x "
                                      "the pre-slowdown p99 + 50 ms in every later second"))
    return out


def _open_to_probe_gaps(evts: list[dict]) -> list[float]:
    gaps, opened = [], None
    for e in evts:
        if e["state"] == "open":
            opened = e["t"]
        elif e["state"] == "half_open" and opened is not None:
            gaps.append(e["t"] - opened)
            opened = None
    return gaps


def plot(folder: Path) -> list[Path]:
    result = json.loads((folder / "result.json").read_text())
    p, v = result["params"], result["variants"]
    rows = read_csv(folder / "timeline.csv")
    names = [n for n in VARIANTS if n in v]
    made = []
    fig, ax = plots.figure(9, 4.5)
    for name in names:
        pts = [(float(r["t"]) + 0.5, float(r["amplification"])) for r in rows
               if r["variant"] == name and r["amplification"]]
        ax.plot([t for t, _ in pts], [a for _, a in pts], label=name,
                color=plots.colour(list(VARIANTS), name), lw=1.6)
    ax.axvspan(p["t1"], p["t2"], color="#f4d6d6", alpha=0.5, label="backends slow")
    ax.set_xlabel("seconds")
    ax.set_ylabel("backend arrivals / offered requests")
    ax.set_title(f"Retry amplification: {p['rate']:g} req/s, service {p['normal_ms']:g} -> "
                 f"{p['slow_ms']:g} ms, timeout {p['timeout_s']:g} s")
    ax.legend(fontsize=8, ncol=2)
    made.append(plots.save(fig, folder / "amplification.png"))

    fig, axes = plots.figure(11, 3.8, ncols=3)
    xs = range(len(names))
    colours = [plots.colour(list(VARIANTS), n) for n in names]
    axes[0].bar(list(xs), [v[n]["goodput_ratio"] for n in names], color=colours)
    axes[0].set_title("goodput (ok / offered)")
    axes[1].bar(list(xs), [v[n]["p99_ms"] or 0 for n in names], color=colours)
    axes[1].set_title("p99 latency of successes (ms)")
    rec = [v[n]["recovery_s"] for n in names]
    axes[2].bar(list(xs), [r if r is not None else p["end"] - p["t2"] for r in rec],
                color=colours, hatch=None)
    for x, r in zip(xs, rec, strict=True):
        if r is None:
            axes[2].text(x, p["end"] - p["t2"], "never", ha="center", va="bottom", fontsize=8)
    axes[2].axhline(drain_bound_s(Params(**{k: (tuple(x) if isinstance(x, list) else x)
                                            for k, x in p.items()})),
                    color="black", ls="--", lw=1, label="drain bound")
    axes[2].set_title("recovery after t2 (s)")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(list(xs), names, rotation=35, fontsize=8)
    made.append(plots.save(fig, folder / "goodput-latency-recovery.png"))
    return made
