"""sticky-sessions' claims (pure): predictions from the parameters (model.py), measured on
what the users saw (their carts) and on HAProxy (its stats socket)."""

from __future__ import annotations

from lblab import claims as C
from lblab.driver import Analysis

from . import model
from .params import Params


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    v, seed = a.variants, a.summary.get("seed", 0)
    return [*_failure(p, v), *_redis(p, v), *_drain(p, v), *_recovery(p, v, a),
            *_hot(p, v, seed), *_stick(p, v)]


def _stick(p: Params, v: dict) -> list[C.Claim]:
    out = []
    pred = model.affinity_lost_share(p, peers=False)
    statements = {
        "stick-no-peers-lost-affinity":
            f"Two HAProxies with stick tables and no peers: when the fabric withdraws one, "
            f"its share of the sessions (1/2) x (1 - 1/N) = {pred:.3f} land on another "
            "backend",
        "stick-no-peers-only-its-sessions":
            "... and only the withdrawn node's sessions move",
        "stick-peers-lost-affinity":
            "With a peers section replicating the table, no session moves",
    }
    for name, cid in (("stick-no-peers", "stick-no-peers-lost-affinity"),
                      ("stick-no-peers", "stick-no-peers-only-its-sessions"),
                      ("stick-peers", "stick-peers-lost-affinity")):
        if why := C.missing_variants(v, name):
            out.append(C.skipped(cid, statements[cid], why))
            continue
        m = v[name]
        active = m.get("active") or 0
        seen = (f"{m.get('moved')} of {active} sessions active at the withdrawal "
                f"({m.get('t0')} s) were answered by another backend after it; "
                f"{m.get('on_failed_node')} had come through the withdrawn node")
        if cid == "stick-no-peers-lost-affinity":
            out.append(C.near(cid, statements[cid], pred, m.get("moved_share"),
                              C.binomial_tolerance(pred, active),
                              note=seen + "; " + _binomial_note(pred, active,
                                                                "active sessions")))
        elif cid == "stick-no-peers-only-its-sessions":
            out.append(C.at_most(cid, statements[cid], 0, m.get("moved_from_survivor"),
                                 note="sessions that had come through the surviving node "
                                      "and moved anyway"))
        else:
            out.append(C.at_most(cid, statements[cid], 0, m.get("moved"), note=seen))
    return out


def _binomial_note(p_hat: float, n: int, what: str) -> str:
    return (f"tolerance: 3 binomial standard errors of a share {p_hat:.3f} over the {n} "
            f"{what} (at least 1/n)")


def _failure(p: Params, v: dict) -> list[C.Claim]:
    name, n = "cookie-local", p.backends
    statements = {
        "lost-carts": f"When one of N = {n} backends fails, the sessions whose carts it held, "
                      f"1/N = {1 / n:.3f} of the active ones, lose them",
        "lost-only-there": "No session whose cart lived on a surviving backend loses it",
        "failed-requests": "Requests failed during detection: at most the failed backend's "
                           f"request rate (U / think / N = {p.rate / n:g}/s) x the detection "
                           f"bound ({p.detection_bound_s:g} s)",
        "detection": f"HAProxy holds the failed backend DOWN within fall x inter + one sample "
                     f"= {p.detection_bound_s:g} s",
    }
    if why := C.missing_variants(v, name):
        return [C.skipped(f"{name}-{k}", s, why) for k, s in statements.items()]
    m = v[name]
    pred, active = model.lost_share(p), m.get("active") or 0
    return [
        C.near(f"{name}-lost-carts", statements["lost-carts"], pred, m.get("lost_share"),
               C.binomial_tolerance(pred, active),
               note=f"{m.get('lost')} of {active} sessions active at the failure (measured "
                    f"{m.get('t0')} s) saw fewer items than they had added; "
                    + _binomial_note(pred, active, "active sessions")),
        C.at_most(f"{name}-lost-only-there", statements["lost-only-there"], 0,
                  m.get("lost_elsewhere"),
                  note=f"{m.get('lost_on_failed')} of the {m.get('on_failed')} sessions on "
                       "the failed backend lost their carts; this counts the others"),
        C.at_most(f"{name}-failed-requests", statements["failed-requests"],
                  model.failed_requests_bound(p), m.get("failed_requests"),
                  note=f"with retries {p.retries} on conn-failure and empty-response and "
                       "redispatch, HAProxy sends each refused request elsewhere, so the "
                       "users see far fewer; counted by the users from the failure on"),
        C.at_most(f"{name}-detection", statements["detection"], p.detection_bound_s,
                  m.get("detection_s"),
                  note=f"first `show stat` sample with the server DOWN (every {p.sample_s:g} "
                       f"s), inter {p.check_inter_ms} ms, fall {p.check_fall}"),
    ]


def _redis(p: Params, v: dict) -> list[C.Claim]:
    name = "cookie-redis"
    statements = {
        "no-lost-carts": "With carts in Redis the same failure loses no cart",
        "no-failed-requests": "... and fails no request: at most those in flight on the "
                              "failed backend, 0 with retry-on conn-failure empty-response",
    }
    if why := C.missing_variants(v, name):
        return [C.skipped(f"{name}-{k}", s, why) for k, s in statements.items()]
    m = v[name]
    return [
        C.at_most(f"{name}-no-lost-carts", statements["no-lost-carts"], 0,
                  m.get("sessions_lost"),
                  note=f"sessions whose reply ever held fewer items than confirmed adds, of "
                       f"{m.get('sessions')}; {m.get('on_failed')} were on the failed backend"),
        C.at_most(f"{name}-no-failed-requests", statements["no-failed-requests"], 0,
                  m.get("failed_requests"),
                  note=f"of {m.get('requests_after')} requests sent from the failure on"),
    ]


def _drain(p: Params, v: dict) -> list[C.Claim]:
    name = "drain"
    pred = model.drain_lost_share(p)
    statements = {
        "ended-kept": f"Draining first: no session that ends within the {p.drain_s:g} s "
                      "window loses its cart",
        "lost-carts": f"... and only those outliving it do: (1/N) e^(-W/tau) = "
                      f"{pred:.4f} of the active sessions (W {p.drain_s:g} s, tau "
                      f"{p.tau_s:g} s)",
        "no-new-sessions": "A draining backend gets no new session",
    }
    if why := C.missing_variants(v, name):
        return [C.skipped(f"{name}-{k}", s, why) for k, s in statements.items()]
    m = v[name]
    active = m.get("active") or 0
    return [
        C.at_most(f"{name}-ended-kept", statements["ended-kept"], 0,
                  m.get("lost_ended_in_window"),
                  note=f"{m.get('ended_in_window')} of the {m.get('on_failed')} sessions on "
                       f"the drained backend checked out before it stopped "
                       f"({m.get('window_s')} s measured)"),
        C.near(f"{name}-lost-carts", statements["lost-carts"], pred, m.get("lost_share"),
               C.binomial_tolerance(pred, active),
               note=f"{m.get('lost')} of {active} active sessions; "
                    + _binomial_note(pred, active, "active sessions")),
        C.at_most(f"{name}-no-new-sessions", statements["no-new-sessions"], 0,
                  m.get("new_sessions_on_drained"),
                  note="sessions whose first reply came from the drained backend"),
    ]


def recovery_deviation(p: Params, curve: list[dict]) -> float | None:
    """The largest |measured - predicted| share over the curve's points, each in units of
    its own 3-binomial-error tolerance (<= 1: every point within it)."""
    worst = None
    for r in curve:
        if r["share"] is None or not r["active"]:
            continue
        z = abs(r["share"] - r["predicted"]) / C.binomial_tolerance(r["predicted"],
                                                                     r["active"])
        worst = z if worst is None else max(worst, z)
    return worst


def _recovery(p: Params, v: dict, a: Analysis) -> list[C.Claim]:
    name = "recovery"
    statement = (f"A returned backend gets only new sessions: its share of the active ones "
                 f"grows as (1/N)(1 - e^(-t/tau)) (N {p.backends}, tau {p.tau_s:g} s), every "
                 "point within 3 binomial errors")
    if why := C.missing_variants(v, name):
        return [C.skipped(f"{name}-curve", statement, why)]
    curve = [r for r in a.series.get("recovery-curve", []) if r["variant"] == name]
    return [C.at_most(f"{name}-curve", statement, 1.0, recovery_deviation(p, curve),
                      note=f"measured: the worst point's |share - predicted| / its tolerance, "
                           f"over {len(curve)} points from when HAProxy held it UP "
                           f"({v[name].get('t_up')} s); tolerance per point: 3 binomial "
                           "errors of the predicted share over the active sessions")]


def _hot(p: Params, v: dict, seed: int) -> list[C.Claim]:
    out = []
    name = "hot-backends"
    statement = (f"With affinity and heavy-tailed users (Pareto {p.alpha:g}) per-backend load "
                 "max/mean is what the users' rates summed per backend give (simulated with "
                 "this run's users and seed)")
    if why := C.missing_variants(v, name):
        out.append(C.skipped(f"{name}-imbalance", statement, why))
    else:
        lo, hi = model.central_interval(model.affinity_imbalance(p, seed))
        out.append(C.between(f"{name}-imbalance", statement, round(lo, 4), round(hi, 4),
                             v[name].get("max_over_mean"),
                             note=f"HAProxy's hrsp_2xx per server; range: the central "
                                  f"{model.CENTRAL:.1%} of {model.TRIALS} simulated "
                                  "assignments (a random order of first requests, round "
                                  "robin, Poisson counts)"))
    name = "hot-roundrobin"
    statements = {
        "imbalance": "Round robin with carts in Redis: max/mean at most the multinomial "
                     "bound for this run's requests",
        "no-lost-carts": "... and no cart is lost though every request may land elsewhere",
    }
    if why := C.missing_variants(v, name):
        return out + [C.skipped(f"{name}-{k}", s, why) for k, s in statements.items()]
    m = v[name]
    bound = model.central_interval(model.multinomial_imbalance(p, seed))[1]
    out += [
        C.at_most(f"{name}-imbalance", statements["imbalance"], round(bound, 4),
                  m.get("max_over_mean"),
                  note=f"bound: the {1 - (1 - model.CENTRAL) / 2:.2%} quantile of "
                       f"{model.TRIALS} multinomial draws of the expected requests; "
                       "rotation spreads them more evenly still"),
        C.at_most(f"{name}-no-lost-carts", statements["no-lost-carts"], 0,
                  m.get("sessions_lost"), note=f"of {m.get('sessions')} sessions"),
    ]
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    out = [f"{p.users} users at {p.rate:g} requests/s over {p.backends} backends; sessions of "
           f"mean {p.tau_s:g} s; checks every {p.check_inter_ms} ms, fall {p.check_fall}."]
    hot = a.variants.get("hot-backends")
    if hot:
        out.append(f"hot-backends: per-backend requests {hot.get('served')}")
    return out
