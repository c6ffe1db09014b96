"""stream-pinning's analysis (pure): the stream client's rows, the unary calls, the backends'
and HAProxy's sampled stream counts and the timeline's measured event times -> metrics per
variant and the series the plots draw.

Where each number comes from:
- shares of active streams: the backends' own `active` counts (what each server holds),
  sampled every `sample_s`; HAProxy's `scur` per server is kept beside them in the series;
- unary shares: the backends' `calls` counters (counter deltas) and, for the first second
  after t1, the client's calls by the backend that answered;
- reconnects and broken streams: the client's rows (each stream's open, close, backend).
"""

from __future__ import annotations

from typing import Any

from lblab import claims as C
from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw, RawVariant
from lblab.timeline import event_time

from . import model
from .params import (
    BREAK_WINDOW_S,
    GRPC_JITTER,
    KILL,
    LOSS,
    LOSS_BACKOFF,
    MAX_AGE,
    NO_JITTER,
    PINNED,
    SCALE_OUT,
    UNARY,
    Params,
    balanced_by,
)

UNARY_BIN_S = 1.0
KINDS = {"grpc": "active_grpc", "ws": "active_ws"}
"""Stream kind -> the backends' counter of its active streams."""


def names(p: Params) -> tuple[list[str], list[str]]:
    old = [f"b{i}" for i in range(1, p.backends + 1)]
    new = [f"b{i}" for i in range(p.backends + 1, p.backends + p.new_backends + 1)]
    return old, new


# -- active streams, from the backends' samples -------------------------------------------
def active_rows(p: Params, name: str, data: RawVariant, t_event: float | None,
                opened: float) -> list[dict]:
    """One row per sample from t = 0: each backend's active streams (all kinds) and
    HAProxy's scur for it; per kind (grpc, ws) the streams and the new backends' share; and
    the share predicted for this variant at that instant (max-age's curve from `opened`,
    when the first streams were established)."""
    old, new = names(p)
    rows = []
    for s in data.table("samples"):
        if s["t"] < 0:
            continue
        row: dict[str, Any] = {"variant": name, "t": s["t"],
                               "predicted_share": predicted_share(p, name, s["t"], t_event,
                                                                  opened)}
        for kind, key in KINDS.items():
            active = {b: s.get(f"{b}_{key}") or 0 for b in old + new}
            total = sum(active.values())
            row[f"total_{kind}"] = total
            row[f"new_share_{kind}"] = (round(sum(active[b] for b in new) / total, 4)
                                        if total else None)
        for b in old + new:
            row[f"{b}_active"] = sum(s.get(f"{b}_{key}") or 0 for key in KINDS.values())
            row[f"{b}_scur"] = s.get(b)
            row[f"{b}_ws_scur"] = s.get(f"ws_{b}")
        rows.append(row)
    return rows


def shares(prefix: str, row: dict | None) -> dict:
    """A sample's per-kind new share and stream count, keyed `share_PREFIX` (gRPC),
    `ws_share_PREFIX`, `active_PREFIX`, `ws_active_PREFIX`, plus its time `t_PREFIX`."""
    if row is None:
        return {f"{k}_{prefix}": None for k in ("share", "ws_share", "active", "ws_active", "t")}
    return {f"share_{prefix}": row["new_share_grpc"], f"ws_share_{prefix}": row["new_share_ws"],
            f"active_{prefix}": row["total_grpc"], f"ws_active_{prefix}": row["total_ws"],
            f"t_{prefix}": row["t"]}


def predicted_share(p: Params, name: str, t: float, t_event: float | None,
                    opened: float = 0.0) -> float | None:
    """The model's new-backend share at t (None where the variant predicts no curve); the
    max-age curves start from `opened`, when the first generation was established."""
    if t_event is None or name not in (PINNED, MAX_AGE, NO_JITTER):
        return None
    if name == PINNED:
        return round(model.pinned_share(p, t - t_event), 4)
    jitter = GRPC_JITTER if name == MAX_AGE else 0.0
    return round(model.max_age_share(p, t - opened, jitter) if t > t_event else 0.0, 4)


def rebalanced_at(p: Params, rows: list[dict], share_key: str, n_key: str,
                  t_event: float | None) -> float | None:
    """Seconds after t_event from which every later row's new share is within 3 binomial
    standard errors (of that row's count) of M/(N+M); None if the run never got there."""
    if t_event is None:
        return None
    later = [r for r in rows if r["t"] >= t_event and r.get(share_key) is not None]
    ok = [abs(r[share_key] - p.new_share) <= C.binomial_tolerance(p.new_share, r[n_key])
          for r in later]
    for i in range(len(later)):
        if all(ok[i:]):
            return round(later[i]["t"] - t_event, 4)
    return None


def sample_at(rows: list[dict], t: float, after: bool = False) -> dict | None:
    """The sample nearest to t (after=True: the first at or after t)."""
    if after:
        later = [r for r in rows if r["t"] >= t]
        return later[0] if later else None
    return min(rows, key=lambda r: abs(r["t"] - t)) if rows else None


# -- the client's streams ----------------------------------------------------------------
def reconnects(streams: list[dict], gen: int | None = None) -> list[float]:
    """When streams were reopened (every generation after a slot's first; or one)."""
    return [r["open_s"] for r in streams
            if r["gen"] > 0 and (gen is None or r["gen"] == gen)]


def reconnect_bins(name: str, times: list[float], end: float, width: float) -> list[dict]:
    rows = []
    for (lo, _hi), got in zip(M.bins(end, width),
                              M.per_bin([{"t": t} for t in times], end, width, key="t"),
                              strict=True):
        rows.append({"variant": name, "t": round(lo, 4), "reconnects": len(got),
                     "per_s": round(len(got) / width, 3)})
    return rows


def peak(times: list[float], window_s: float) -> dict:
    count = model.sliding_peak(times, window_s)
    return {"peak": count, "peak_per_s": round(count / window_s, 3),
            "spread_s": round(max(times) - min(times), 4) if times else None}


def loss_metrics(p: Params, streams: list[dict], t_kill: float) -> dict:
    """Streams the kill broke (on b1, ended within BREAK_WINDOW_S of it), and when each
    broken slot had a stream established again (`last_lag_s` None unless every one was)."""
    broken = [r for r in streams if r["backend"] == "b1" and r["close_s"] is not None
              and t_kill <= r["close_s"] < t_kill + BREAK_WINDOW_S
              and r["outcome"] not in ("run_end", "client")]
    by_slot = {(r["slot"], r["gen"]): r for r in streams}
    lags, reopens = [], []
    for r in broken:
        nxt = next((n for g in range(r["gen"] + 1, r["gen"] + 50)
                    if (n := by_slot.get((r["slot"], g))) and n["established_s"] is not None),
                   None)
        if nxt is not None:
            lags.append(nxt["established_s"] - t_kill)
            reopens.append(nxt["established_s"])
    return {"broken": len(broken), "reestablished": len(lags),
            "within_1s": sum(lag <= 1.0 for lag in lags) / len(broken) if broken else None,
            "last_lag_s": round(max(lags), 4) if lags and len(lags) == len(broken) else None,
            **{f"reopen_{k}": v for k, v in peak(reopens, p.peak_window_s).items()}}


# -- unary calls ------------------------------------------------------------------------
def unary_metrics(p: Params, data: RawVariant, t1: float) -> tuple[dict, list[dict]]:
    old, new = names(p)
    samples = [s for s in data.table("samples") if s["t"] >= 0]
    base = data.doc("backends-before")
    counters = [{"t": s["t"], **{b: (s.get(f"{b}_calls") or 0) - (base.get(f"{b}_calls") or 0)
                                 for b in old + new}} for s in samples]
    end = max((s["t"] for s in samples), default=0.0)
    after = {b: M.counter_delta(counters, b, t1, end) for b in old + new}
    total = sum(after.values())
    calls = [c for c in data.table("calls") if c["outcome"] == "ok"]
    first = M.window(calls, t1, t1 + 1.0)
    series = []
    span = max((c["intended_s"] for c in calls), default=0.0) + 1e-9
    for (lo, hi), got in zip(M.bins(span, UNARY_BIN_S), M.per_bin(calls, span, UNARY_BIN_S),
                             strict=True):
        after_t1 = min(1.0, max(0.0, (hi - t1) / (hi - lo)))
        series.append({"variant": UNARY, "t": round((lo + hi) / 2, 4), "calls": len(got),
                       "new_share": M.share(got, lambda c: c["backend"] in new),
                       "predicted_share": round(p.new_share * after_t1, 4)})
    failed = [c for c in data.table("calls") if c["outcome"] != "ok"]
    return {"calls_after": round(total), "share_after": (sum(after[b] for b in new) / total
                                                          if total else None),
            "calls_first_s": len(first),
            "share_first_s": M.share(first, lambda c: c["backend"] in new),
            "failed": len(failed)}, series


# -- everything -------------------------------------------------------------------------
def analyse(p: Params, raw: Raw) -> Analysis:
    variants: dict[str, dict] = {}
    active: list[dict] = []
    recon: list[dict] = []
    unary_series: list[dict] = []
    for name, data in raw.items():
        timeline = data.doc("timeline")
        t_event = event_time(timeline, KILL if name in (LOSS, LOSS_BACKOFF) else SCALE_OUT)
        out: dict[str, Any] = {"t_event": t_event}
        if name == UNARY:
            if t_event is not None:
                metrics, unary_series = unary_metrics(p, data, t_event)
                out.update(metrics)
            variants[name] = out
            continue
        everything = data.table("streams")
        streams = [r for r in everything if r["kind"] == "grpc"]
        opened = M.quantile([r["established_s"] for r in streams
                             if r["gen"] == 0 and r["established_s"] is not None], 0.5) or 0.0
        rows = active_rows(p, name, data, t_event, opened)
        active += rows
        end = max((r["close_s"] or 0 for r in streams), default=0.0)
        times = reconnects(streams)
        recon += reconnect_bins(name, times, end, p.peak_window_s)
        out.update({"streams": len(streams), "reconnects": len(times),
                    "ws_streams": len(everything) - len(streams),
                    "first_established_s": round(opened, 4),
                    "failed_opens": sum(r["established_s"] is None for r in streams)})
        if t_event is not None and name == PINNED:
            out.update({**shares("at_tau", sample_at(rows, t_event + p.lifetime_s)),
                        **shares("end", rows[-1] if rows else None),
                        **shares("1s", sample_at(rows, t_event + 1.0))})
        if t_event is not None and name in (MAX_AGE, NO_JITTER):
            by = t_event - p.t1 + balanced_by(p, p.setting(name).jitter) + p.sample_s
            first_wave = reconnects(streams, gen=1)
            calm = p.age_s * (1 - p.setting(name).jitter) + p.grace_s
            idle = [r["new_share_grpc"] for r in rows
                    if t_event < r["t"] < calm and r["new_share_grpc"] is not None]
            out.update({**shares("balanced", sample_at(rows, by, after=True)),
                        "idle_samples": len(idle), "idle_share_max": max(idle, default=None),
                        "first_wave": len(first_wave), **peak(first_wave, p.peak_window_s)})
        if t_event is not None and name in (LOSS, LOSS_BACKOFF):
            out.update(loss_metrics(p, streams, t_event))
        if name in (PINNED, MAX_AGE, NO_JITTER):
            out["rebalance_s"] = rebalanced_at(p, rows, "new_share_grpc", "total_grpc", t_event)
        variants[name] = out
    if UNARY in variants:
        variants[UNARY]["rebalance_s"] = rebalanced_at(
            p, unary_series, "new_share", "calls", variants[UNARY]["t_event"])
    summary = {"new_share": p.new_share, "peak_window_s": p.peak_window_s,
               "balanced_by": {n: balanced_by(p, p.setting(n).jitter)
                               for n in (MAX_AGE, NO_JITTER)},
               "predicted": predictions(p)}
    return Analysis(variants, {"active-streams": active, "reconnects": recon,
                               "unary-share": unary_series}, summary)


def predictions(p: Params) -> dict:
    """Every predicted number the claims and plots use, from the parameters alone."""
    return {
        "pinned_share_at_tau": model.pinned_share(p, p.lifetime_s),
        "jitter_spread_s": model.jitter_spread_s(p),
        "mean_reconnect_rate": model.mean_reconnect_rate(p),
        "jitter_peak_bound": model.peak_bound(p.streams, model.jitter_spread_s(p),
                                              p.peak_window_s),
        "no_jitter_peak": float(p.streams),
        "lost_streams": model.lost_streams(p),
        "backoff_peak_bound": model.peak_bound(round(model.lost_streams(p)), p.backoff_s,
                                               p.peak_window_s),
        "rebalance_s": {n: model.rebalance_s(p, n) for n in (PINNED, UNARY, MAX_AGE, NO_JITTER)},
    }
