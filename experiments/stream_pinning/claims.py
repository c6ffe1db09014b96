"""stream-pinning's claims (pure): predictions from the parameters (model.py), measured at
the backends (their active streams and call counters) and by the client (its streams).

Tolerances: a share of n streams or calls gets 3 binomial standard errors of n
(lblab.claims.binomial_tolerance; round robin is more even than that, so it is loose); a
count out of K with p = 1/N gets 3 binomial standard errors of the count; peaks are bounded
by the 99.7th percentile of their simulated distribution (model.peak_bound) with no slack.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lblab import claims as C
from lblab.driver import Analysis

from . import model
from .params import (
    BREAK_WINDOW_S,
    LOSS,
    LOSS_BACKOFF,
    MAX_AGE,
    NO_JITTER,
    PINNED,
    UNARY,
    Params,
    balanced_by,
)


def _share(id: str, statement: str, predicted: float, measured: float | None,
           n: int | None, what: str) -> C.Claim:
    tol = C.binomial_tolerance(predicted, n or 0)
    return C.near(id, statement, round(predicted, 4), measured, round(tol, 4),
                  f"tolerance: 3 binomial standard errors of a share of {n} {what} "
                  "(at least 1/n)")


def _claim(v: dict, names: tuple[str, ...], id: str, statement: str,
           make: Callable[[], C.Claim]) -> C.Claim:
    """The claim, or the same id skipped when a variant it needs was not run."""
    why = C.missing_variants(v, *names)
    return C.skipped(id, statement, why) if why else make()


def count_error(p: Params) -> float:
    """3 binomial standard errors of the number of K streams on one of N backends."""
    return 3 * math.sqrt(p.streams * (1 / p.backends) * (1 - 1 / p.backends))


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    v = a.variants
    q, w, lost = p.new_share, p.peak_window_s, model.lost_streams(p)

    def since(name: str, key: str) -> float:
        return (v[name].get(key) or 0.0) - (v[name].get("t_event") or 0.0)

    out = [
        _claim(v, (PINNED,), "pinned-share-at-tau",
               s := ("pinned streams: the new backends hold M/(N+M) (1 - e^(-(t - t1)/tau)) "
                     "of the streams one lifetime after the scale-out"),
               lambda: _share("pinned-share-at-tau", s,
                              model.pinned_share(p, since(PINNED, "t_at_tau")),
                              v[PINNED].get("share_at_tau"), v[PINNED].get("active_at_tau"),
                              f"active streams (read at t1 + {since(PINNED, 't_at_tau'):.2f} s)")),
        _claim(v, (PINNED,), "pinned-share-end",
               s2 := "pinned streams: at the end of the run still on that curve, below M/(N+M)",
               lambda: _share("pinned-share-end", s2,
                              model.pinned_share(p, since(PINNED, "t_end")),
                              v[PINNED].get("share_end"), v[PINNED].get("active_end"),
                              f"active streams (read at t1 + {since(PINNED, 't_end'):.2f} s)")),
        _claim(v, (UNARY,), "unary-share-first-second",
               s3 := ("unary calls are balanced per call: the new backends answer M/(N+M) of "
                      "the calls in the first second after t1 (by the answering backend)"),
               lambda: _share("unary-share-first-second", s3, q,
                              v[UNARY].get("share_first_s"), v[UNARY].get("calls_first_s"),
                              "calls")),
        _claim(v, (UNARY,), "unary-share",
               s4 := "unary calls after t1: M/(N+M) of the calls counted at the backends",
               lambda: _share("unary-share", s4, q, v[UNARY].get("share_after"),
                              v[UNARY].get("calls_after"), "calls")),
        _claim(v, (PINNED, UNARY), "pinned-vs-unary",
               s5 := ("contrast: one second after t1 the pinned streams' new share is at most "
                      "M/(N+M) (1 - e^(-1/tau)), where unary calls have M/(N+M)"),
               lambda: C.at_most(
                   "pinned-vs-unary", s5, round(model.pinned_share(p, 1.0), 4),
                   v[PINNED].get("share_1s"),
                   round(C.binomial_tolerance(model.pinned_share(p, 1.0), p.streams), 4),
                   f"slack: 3 binomial errors over K; unary measured "
                   f"{v[UNARY].get('share_first_s')} in the same second")),
    ]
    out.append(_claim(
        v, (MAX_AGE,), "pinned-without-lifetime",
        s12 := ("streams with no lifetime stay where they are: from t1 until the first age-out "
                f"(0.9 A + G = {0.9 * p.age_s + p.grace_s:g} s) the new backends hold none"),
        lambda: C.at_most("pinned-without-lifetime", s12, 0.0, v[MAX_AGE].get("idle_share_max"),
                          0, f"the largest new share over {v[MAX_AGE].get('idle_samples')} "
                          "samples; nothing ends, nothing arrives, so exactly 0")))
    for name, rule in ((MAX_AGE, "t1 + 1.1 A + G"), (NO_JITTER, "t1 + A + G")):
        stmt = (f"{name}: balanced at M/(N+M) by {rule} = "
                f"{balanced_by(p, p.setting(name).jitter):g} s (the first sample after it)")
        out.append(_claim(v, (name,), f"{name}-balanced", stmt,
                          lambda name=name, stmt=stmt: _share(
                              f"{name}-balanced", stmt, q, v[name].get("share_balanced"),
                              v[name].get("active_balanced"), "active streams")))
    for name, key, what in ((PINNED, "at_tau", "one lifetime after t1, on the same curve"),
                            (MAX_AGE, "balanced", "balanced by t1 + 1.1 A + G (closed 1001)")):
        sid = f"ws-{name}-share"
        stmt = f"WebSocket streams, {name}: the new backends' share {what}"
        if p.ws_streams == 0:
            out.append(C.skipped(sid, stmt, "ws_streams=0"))
            continue
        out.append(_claim(v, (name,), sid, stmt, lambda name=name, key=key, sid=sid, stmt=stmt:
                          _share(sid, stmt, model.pinned_share(p, since(name, f"t_{key}"))
                                 if name == PINNED else q, v[name].get(f"ws_share_{key}"),
                                 v[name].get(f"ws_active_{key}"), "active WebSockets")))
    spread = model.jitter_spread_s(p)
    out += [
        _claim(v, (NO_JITTER,), "no-jitter-peak",
               s6 := (f"no jitter: all K = {p.streams} first-wave reconnects fall in one "
                      f"{w:g} s window ({p.streams / w:g} per second)"),
               lambda: C.at_least("no-jitter-peak", s6, p.streams, v[NO_JITTER].get("peak"), 0,
                                  f"the K streams open within K/open_rate = "
                                  f"{p.streams / p.open_rate:g} s < w and each ends at exactly "
                                  "A + G; no slack")),
        _claim(v, (MAX_AGE,), "jitter-peak",
               s7 := (f"gRPC's jitter spreads the first wave over 0.2 A = {spread:g} s: the peak "
                      f"in a {w:g} s window is at most "
                      f"{model.peak_bound(p.streams, spread, w):g} (mean rate K / 0.2 A = "
                      f"{model.mean_reconnect_rate(p):g} per second)"),
               lambda: C.at_most("jitter-peak", s7, model.peak_bound(p.streams, spread, w),
                                 v[MAX_AGE].get("peak"), 0,
                                 f"bound: the {model.PEAK_QUANTILE:.1%} quantile of the "
                                 "sliding-window peak of K uniform instants over 0.2 A "
                                 f"({model.PEAK_TRIALS} seeded trials)")),
    ]
    for name in (LOSS, LOSS_BACKOFF):
        stmt = (f"{name}: the killed backend's K/N = {lost:g} streams break within "
                f"{BREAK_WINDOW_S:g} s")
        out.append(_claim(v, (name,), f"{name}-broken", stmt,
                          lambda name=name, stmt=stmt: C.near(
                              f"{name}-broken", stmt, lost, v[name].get("broken"),
                              round(count_error(p), 3),
                              "tolerance: 3 binomial standard errors of a count out of K "
                              "with p = 1/N (round robin is exact; this is loose)")))
    backoff_bound = model.peak_bound(round(lost), p.backoff_s, w)
    out += [
        _claim(v, (LOSS,), "backend-loss-reconnected-1s",
               s8 := ("immediate reconnects: every broken stream is established again on a "
                      "survivor within 1 s of the kill"),
               lambda: C.at_least("backend-loss-reconnected-1s", s8, 1.0,
                                  v[LOSS].get("within_1s"), 0)),
        _claim(v, (LOSS,), "backend-loss-peak",
               s9 := (f"immediate reconnects: the broken streams reopen together, about K/N "
                      f"in one {w:g} s window"),
               lambda: C.at_least("backend-loss-peak", s9, round(lost - count_error(p), 3),
                                  v[LOSS].get("reopen_peak"), 0,
                                  "bound: K/N less 3 binomial standard errors of the count")),
        _claim(v, (LOSS_BACKOFF,), "backend-loss-backoff-peak",
               s10 := (f"full-jitter backoff over {p.backoff_s:g} s: the reopen peak in a "
                       f"{w:g} s window is at most {backoff_bound:g}"),
               lambda: C.at_most("backend-loss-backoff-peak", s10, backoff_bound,
                                 v[LOSS_BACKOFF].get("reopen_peak"), 0,
                                 f"bound: the {model.PEAK_QUANTILE:.1%} quantile of the peak "
                                 "of K/N uniform instants over backoff_s (seeded trials)")),
        _claim(v, (LOSS_BACKOFF,), "backend-loss-backoff-within",
               s11 := ("full-jitter backoff: every broken stream is established again within "
                       "backoff_s + 1 s"),
               lambda: C.at_most("backend-loss-backoff-within", s11, p.backoff_s + 1.0,
                                 v[LOSS_BACKOFF].get("last_lag_s"), 0)),
    ]
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    return ["HAProxy 2.6 has no connection-age limit of its own: max-age is the servers' "
            "(gRPC's MAX_CONNECTION_AGE, which jitters +-10 % and cannot be told not to; "
            "max-age-no-jitter ends each stream in the backend at exactly A + G)."]
