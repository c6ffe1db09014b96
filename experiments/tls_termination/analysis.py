"""tls-termination's analysis: raw handshake records -> per-variant outcomes, served serials
and the windows the claims judge. Pure: reads only raw data.

Handshakes are placed by their actual start (`start_s`, on the variant's clock: the client's
t = 0 is the timeline's origin). A window "after an event" starts when the event was done
and one "before" ends when it fired, so handshakes that overlapped the change are in
neither. Wall-clock instants (notAfter, the OCSP staleness instant) are put on the clock
with the timeline's origin.
"""

from __future__ import annotations

from typing import Any

from lblab import metrics
from lblab.driver import Analysis
from lblab.raw import Raw

from .params import (
    BAD,
    BIN_S,
    CA_ROTATE,
    COMMIT_EXPIRED,
    INSTALL,
    NAMES,
    RELOAD,
    RESTART,
    ROTATE,
    ROTATE_NO_OCSP,
    SET_OCSP,
    Params,
)

EVENTS = {"expiry": (INSTALL, COMMIT_EXPIRED), "rotate-runtime": (ROTATE,),
          "bad-rotation": (BAD,), "rotate-reload": (RELOAD,), "restart": (RESTART,),
          "ocsp": ("ocsp-short", SET_OCSP, ROTATE_NO_OCSP), "mtls-ca": (CA_ROTATE,),
          "mtls-bundle": (CA_ROTATE,)}


def ok(r: dict) -> bool:
    return r["outcome"] == "ok"


def fail_share(rows: list[dict]) -> float | None:
    return metrics.share(rows, lambda r: not ok(r))


def serial_share(rows: list[dict], serial: int | None) -> float | None:
    return metrics.share(rows, lambda r: r["serial"] == serial)


def between(rows: list[dict], lo: float, hi: float) -> list[dict]:
    return metrics.window(rows, lo, hi, key="start_s")


def event_times(timeline: dict) -> dict[str, dict[str, float | None]]:
    return {e["what"]: {"fired": e["fired"], "done": e["done"]}
            for e in timeline.get("events", [])}


def roles(tls: dict) -> dict[int, str]:
    """Serial -> what the certificate was in the variant (for the serial plot)."""
    out = {tls[f"baseline_{n}"]: f"baseline {n}" for n in NAMES if f"baseline_{n}" in tls}
    for what, info in tls.items():
        if isinstance(info, dict) and isinstance(info.get("serial"), int):
            out[info["serial"]] = what
    return out


def _first(rows: list[dict], pred: Any) -> float | None:
    found = [r["start_s"] for r in rows if pred(r)]
    return min(found) if found else None


def _last(rows: list[dict], pred: Any) -> float | None:
    found = [r["start_s"] for r in rows if pred(r)]
    return max(found) if found else None


def analyse(p: Params, raw: Raw) -> Analysis:
    variants: dict[str, dict[str, Any]] = {}
    outcomes_series: list[dict] = []
    serial_series: list[dict] = []
    failures: list[dict] = []
    for name, rv in raw.items():
        rows = sorted(rv.table("tls-records"), key=lambda r: r["id"])
        timeline = rv.doc("timeline")
        tls = rv.doc("tls", {})
        ev = event_times(timeline)
        origin = timeline.get("origin_wall")
        end = p.seconds(name)
        m: dict[str, Any] = {
            "handshakes": len(rows), "failed": sum(not ok(r) for r in rows),
            "fail_share": fail_share(rows),
            "outcomes": _count(r["outcome"] for r in rows),
            "events": {k: v["fired"] for k, v in ev.items()},
            "events_done": {k: v["done"] for k, v in ev.items()},
            "offered": p.rate * end,
        }
        kind = name
        m.update(_specific(kind, p, rows, tls, ev, origin, end))
        if kind.startswith("mtls"):
            m.update(servers_down(rv.tables.get("servers", []), ev.get(CA_ROTATE, {})))
        variants[name] = m
        role = roles(tls)
        for (lo, hi), bin_rows in zip(metrics.bins(end, BIN_S),
                                      metrics.per_bin(rows, end, BIN_S, key="start_s"),
                                      strict=True):
            outcomes_series.append({"variant": name, "t": lo, "ok": sum(map(ok, bin_rows)),
                                    "failed": sum(not ok(r) for r in bin_rows),
                                    "per_s": len(bin_rows) / (hi - lo)})
        for r in rows:
            serial_series.append({"variant": name, "t": r["start_s"], "profile": r["profile"],
                                  "serial": r["serial"],
                                  "role": role.get(r["serial"], "none" if r["serial"] is None
                                                   else "other"),
                                  "outcome": r["outcome"], "staple": r["staple"]})
        failures.append({"variant": name, "handshakes": len(rows), "failed": m["failed"],
                         **{f"n_{k}": v for k, v in m["outcomes"].items()}})
    return Analysis(variants, {"outcomes": outcomes_series, "serials": serial_series,
                               "failures": failures},
                    {"failures": {f["variant"]: f["failed"] for f in failures}})


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _specific(kind: str, p: Params, rows: list[dict], tls: dict, ev: dict, origin: float | None,
              end: float) -> dict[str, Any]:
    """The windows and shares the claims of one kind of variant judge."""
    if kind == "expiry" and INSTALL in tls and INSTALL in ev and origin is not None:
        na = tls[INSTALL]["not_after_wall"] - origin
        committed = ev.get(COMMIT_EXPIRED, {})
        before = between(rows, 0, na)
        after = between(rows, na + 1.0, committed.get("fired") or end)
        expired_after = between(rows, committed.get("done") or end, end)
        return {
            "not_after_t": round(na, 4),
            "before_n": len(before), "before_failed": sum(not ok(r) for r in before),
            "after_n": len(after), "after_fail_share": fail_share(after),
            "after_expired_share": metrics.share(after,
                                                 lambda r: r["outcome"] == "verify:expired"),
            "first_failure_offset_s": _offset(_first(rows, lambda r: not ok(r)), na),
            "last_ok_offset_s": _offset(_last(between(rows, 0, committed.get("fired") or end),
                                              ok), na),
            "expired_commit_success": _success(tls.get(COMMIT_EXPIRED, {})),
            "expired_served_share": serial_share(
                expired_after, tls.get(COMMIT_EXPIRED, {}).get("serial")),
            "expired_after_n": len(expired_after),
            "expired_after_fail_share": fail_share(expired_after),
        }
    if kind in ("rotate-runtime", "bad-rotation", "rotate-reload", "restart"):
        what = {"rotate-runtime": ROTATE, "bad-rotation": BAD, "rotate-reload": RELOAD,
                "restart": RESTART}[kind]
        e = ev.get(what, {})
        if e.get("fired") is None or e.get("done") is None:
            return {}
        before, after = between(rows, 0, e["fired"]), between(rows, e["done"], end)
        info = tls.get(what, {})
        out = {"before_n": len(before), "after_n": len(after),
               "old_served_before": serial_share(before, tls.get(f"baseline_{NAMES[0]}")),
               "new_served_after": serial_share(after, info.get("serial")),
               "old_served_after": serial_share(after, tls.get(f"baseline_{NAMES[0]}")),
               "event_s": round(e["done"] - e["fired"], 4)}
        if kind == "bad-rotation":
            out["commit_refused"] = 0.0 if _success(info) else 1.0
            out["commit_reply"] = info.get("reply", "")
        if kind == "restart" and "listening_wall" in info:
            out["gap_s"] = round(info["listening_wall"] - info["stop_wall"], 4)
            out["stop_s"] = round(info["stopped_wall"] - info["stop_wall"], 4)
            during = between(rows, e["fired"], e["done"])
            out["during_n"] = len(during)
            out["during_failed"] = sum(not ok(r) for r in during)
            lost = [r["start_s"] for r in rows if not ok(r)]
            # What the client saw: from its first to its last failed start, plus one
            # schedule step (the gap the measured event time overstates by its polls).
            out["client_gap_s"] = (round(max(lost) - min(lost) + 1 / p.rate, 4) if lost
                                   else 0.0)
        return out
    if kind in ("sni", "sni-strict"):
        out = {}
        for k in range(3):
            mine = [r for r in rows if r["profile"] == k]
            out[f"p{k}_n"] = len(mine)
            out[f"p{k}_ok_share"] = metrics.share(mine, ok)
            out[f"p{k}_served_a"] = serial_share(mine, tls.get(f"baseline_{NAMES[0]}"))
            out[f"p{k}_served_b"] = serial_share(mine, tls.get(f"baseline_{NAMES[1]}"))
            out[f"p{k}_hostname_share"] = metrics.share(mine,
                                                        lambda r: r["outcome"] == "hostname")
            out[f"p{k}_refused_share"] = metrics.share(
                mine, lambda r: r["outcome"] == "handshake_failed")
        return out
    if kind == "ocsp" and "ocsp-short" in tls and origin is not None:
        stale = tls["ocsp-short"]["stale_wall"] - origin
        short_done = ev.get("ocsp-short", {}).get("done") or 0.0
        refresh, rot = ev.get(SET_OCSP, {}), ev.get(ROTATE_NO_OCSP, {})
        must = [r for r in rows if r["profile"] == 0]
        plain = [r for r in rows if r["profile"] == 1]
        first_gone = _first(between(rows, short_done, refresh.get("fired") or end),
                            lambda r: not r["staple"])
        stale_rows = between(must, stale + 1.0, refresh.get("fired") or end)
        fresh_rows = between(must, refresh.get("done") or end, rot.get("fired") or end)
        dropped = between(must, rot.get("done") or end, end)
        return {
            "stale_t": round(stale, 4),
            "staple_stop_offset_s": _offset(first_gone, stale),
            "before_stale_must_fail_share": fail_share(between(must, 0, stale)),
            "stale_n": len(stale_rows), "stale_must_fail_share": fail_share(stale_rows),
            "refreshed_n": len(fresh_rows), "refreshed_must_fail_share": fail_share(fresh_rows),
            "refresh_reply": tls.get(SET_OCSP, {}).get("reply", ""),
            "dropped_n": len(dropped), "dropped_must_fail_share": fail_share(dropped),
            "dropped_staple_share": metrics.share(dropped, lambda r: bool(r["staple"])),
            "ordinary_n": len(plain), "ordinary_failed": sum(not ok(r) for r in plain),
        }
    if kind in ("mtls-ca", "mtls-bundle"):
        e = ev.get(CA_ROTATE, {})
        if e.get("fired") is None or e.get("done") is None:
            return {}
        before, after = between(rows, 0, e["fired"]), between(rows, e["done"], end)
        return {"before_n": len(before), "before_failed": sum(not ok(r) for r in before),
                "after_n": len(after), "after_fail_share": fail_share(after),
                "after_503_share": metrics.share(after, lambda r: r["outcome"] == "http_503")}
    return {}


def servers_down(samples: list[dict], rotation: dict) -> dict[str, Any]:
    """From HAProxy's sampled server states: when every server was DOWN after the rotation,
    what their check said then, and whether any server was ever DOWN."""
    names = sorted(k[:-len("_status")] for s in samples for k in s if k.endswith("_status"))
    names = list(dict.fromkeys(names))
    fired = rotation.get("fired")

    def down(s: dict, n: str) -> bool:
        return str(s.get(f"{n}_status") or "").startswith("DOWN")

    ever = any(down(s, n) for s in samples for n in names)
    out: dict[str, Any] = {"servers": len(names), "ever_down": 1.0 if ever else 0.0,
                           "detection_s": None, "down_l6rsp_share": None}
    if fired is None or not names:
        return out
    for s in samples:
        if s["t"] >= fired and all(down(s, n) for n in names):
            out["detection_s"] = round(s["t"] - fired, 4)
            out["down_l6rsp_share"] = sum(str(s.get(f"{n}_check")) == "L6RSP"
                                          for n in names) / len(names)
            break
    return out


def _offset(t: float | None, ref: float) -> float | None:
    return None if t is None else round(t - ref, 4)


def _success(info: dict) -> bool:
    return "Success" in info.get("reply", "")
