"""From raw data to verdicts: one cell per (variant, component, case), read from what the
client got back and what each backend's parser logged.

Raw data per variant: `client` (the raw client's results: per target and case the local
port, the responses, whether the peer closed), `backend-log` (every request each backend
read: its connection, index on it, method, target, header fields as parsed, body, and the
proxy's stamp `x-lblab-client: IP:PORT` when a proxy forwarded it), `setting` (whether a
proxy was in front, the client's address). The lab-level `corpus` document holds the cases
and their bytes.

A cell's verdict:
  reject     the component did not serve the request: an error status first, or nothing
  desync     (through a proxy) the backend read a request the proxy never forwarded as one
             (no stamp on it), or read a forwarded request inside another's body (a stamp
             in a body)
  normalise  served, but the backend's reading differs from the bytes as sent (method,
             target, or the multiset of fields with names compared case-insensitively,
             except a legacy case's `legacy_header`, whose exact case is the point), or
             the backend lost the fields after one it could not read (and the stamp)
  accept     served as sent
The proxy's own verdict (component `proxy`): reject when HAProxy answered with its own error
page and no backend read the request; else normalise or accept as above, taken over the
chains whose backend echoed the request.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

from lblab.driver import Analysis
from lblab.workloads.parsers import STAMP

from .corpus import as_sent, lenient_framing, restricted_names

PROXY = "proxy"
IGNORED = {STAMP, "connection"}
"""Fields a proxy adds or rewrites by design (hop-by-hop): not a change of the request."""
HAPROXY_PAGE = "<html><body><h1>"
"""How HAProxy's own error pages start (a backend never answers that)."""
SERVER_SIDE = (502, 503, 504)
"""HAProxy's errors about the server (it forwarded the request): not the proxy rejecting."""
VERDICTS = ("reject", "normalise", "accept", "desync")


def fields_of(headers: list) -> Counter:
    return Counter((str(n).lower(), str(v)) for n, v in headers
                   if str(n).lower() not in IGNORED)


def changed(sent: dict, row: dict) -> bool:
    """Did this reading of the request differ from the bytes as sent?"""
    return (row["method"] != sent["method"] or row["target"] != sent["target"]
            or fields_of(row["headers"]) != fields_of(sent["headers"]))


def _port(conn: str) -> int:
    return int(conn.split("#")[0].rsplit(":", 1)[1])


def _served(resp: list[dict]) -> bool:
    return bool(resp) and 200 <= resp[0]["status"] < 300


def cell(case: dict, result: dict, rows: list[dict], proxied: bool, client_ip: str,
         unique_target: bool = True) -> dict:
    """One (component, case) observation: what came back and what the backend read.

    Through a proxy the backend's requests are this case's when they carry the stamp with
    the client connection's port, and so are the later requests on the same backend
    connections. A backend that lost the stamp (its parser dropped the fields after one it
    could not read) is matched by its first request's target when no other case has it."""
    sent = as_sent(base64.b64decode(case["data_b64"]))
    resp = result.get("responses", [])
    port = result.get("local_port")
    lost: set[str] = set()
    if proxied:
        stamp = f"{client_ip}:{port}"
        conns = {r["conn"] for r in rows if r["stamp"] == stamp}
        if not conns and unique_target:
            lost = conns = {r["conn"] for r in rows if r["index"] == 1 and not r["stamp"]
                            and r["target"] == sent["target"]}
    else:
        conns = {r["conn"] for r in rows if port is not None and _port(r["conn"]) == port}
    mine = sorted((r for r in rows if r["conn"] in conns), key=lambda r: (r["conn"], r["index"]))
    stamped = [r for r in mine if r["stamp"]]
    heads = [r for r in mine if r["conn"] in lost and r["index"] == 1]
    first = (stamped or heads or mine)[0] if mine else None
    page = bool(resp) and resp[0]["body"].startswith(HAPROXY_PAGE)
    proxy_rejected = (proxied and page and resp[0]["status"] not in SERVER_SIDE
                      and not stamped)
    smuggled = [r["target"] for r in mine if proxied and not r["stamp"] and r not in heads]
    swallowed = [r["target"] for r in stamped if STAMP in r["body"].lower()]
    served = _served(resp) and first is not None and first["complete"]
    echo = stamped[:1] or heads[:1] or mine[:1]
    exact = {str(n) for r in echo for n, _ in r["headers"]}
    case_kept = (case["legacy_header"] in exact) if case["legacy_header"] else None
    if proxied and (smuggled or swallowed):
        verdict = "desync"
    elif not served:
        verdict = "reject"
    elif changed(sent, first) or case_kept is False or heads:
        verdict = "normalise"
    else:
        verdict = "accept"
    if proxy_rejected:
        proxy = "reject"
    elif not proxied:
        proxy = ""
    elif stamped and stamped[0]["complete"]:
        proxy = "normalise" if changed(sent, stamped[0]) or case_kept is False else "accept"
    else:
        proxy = "forwarded"
    dropped = sorted({n.lower() for n, _ in sent["headers"]} - {n.lower() for n in exact}
                     - IGNORED) if echo and served else []
    return {
        "verdict": verdict, "proxy": proxy,
        "status": resp[0]["status"] if resp else None,
        "responses": len(resp), "closed": bool(result.get("closed")),
        "requests_read": len(mine),
        "body_len": first.get("body_len") if first else None,
        "targets_read": " ".join(r["target"] for r in mine),
        "marker_read": bool(case["marker"]) and any(r["target"] == case["marker"]
                                                    for r in mine),
        "smuggled": " ".join(smuggled), "swallowed": " ".join(swallowed),
        "case_kept": case_kept,
        "dropped": " ".join(dropped),
        "stamp_lost": bool(heads),
    }


def proxy_verdict(cells: list[dict]) -> str:
    """The proxy's verdict over its chains: reject if most chains saw HAProxy refuse it,
    else normalise if any backend echo shows a change, else accept (forwarded unseen:
    every backend refused what it got)."""
    kinds = Counter(c["proxy"] for c in cells)
    if kinds["reject"] * 2 > len(cells):
        return "reject"
    if kinds["normalise"]:
        return "normalise"
    return "accept" if kinds["accept"] else "forwarded"


def analyse(p: Any, raw: Any) -> Analysis:
    cases = raw.lab["corpus"]
    variants: dict[str, dict] = {}
    matrix: list[dict] = []
    summary: dict[str, Any] = {"cases": [
        {**{k: c[k] for k in c if k != "data_b64"},
         "restricted": restricted_names(base64.b64decode(c["data_b64"])),
         "lenient": lenient_framing(base64.b64decode(c["data_b64"]))} for c in cases]}
    targets = Counter(as_sent(base64.b64decode(c["data_b64"]))["target"] for c in cases)
    for name, rv in raw.items():
        setting = rv.doc("setting")
        proxied = setting["proxy"]
        rows = [r for r in rv.doc("backend-log") if r.get("event") == "request"]
        results = {(r["target"], r["case"]): r for r in rv.doc("client")}
        per: dict[str, dict] = {}
        for case in cases:
            chain_cells = []
            for kind in setting["backends"]:
                res = results.get((kind, case["name"]))
                if res is None:
                    continue
                c = cell(case, res, [r for r in rows if r["backend"] == kind], proxied,
                         setting["client_ip"],
                         targets[as_sent(base64.b64decode(case["data_b64"]))["target"]] == 1)
                chain_cells.append(c)
                matrix.append({"variant": name, "component": kind, "case": case["name"],
                               "rfc": case["verdict"], "group": case["group"],
                               "legacy": case["legacy"], **c})
            if proxied and chain_cells:
                pv = proxy_verdict(chain_cells)
                per[case["name"]] = {"proxy": pv,
                                     "chains": {k: c["verdict"] for k, c in
                                                zip(setting["backends"], chain_cells, strict=True)},
                                     "case_kept": [c["case_kept"] for c in chain_cells
                                                   if c["verdict"] != "reject"],
                                     "stamp_lost": [k for k, c in zip(setting["backends"],
                                                                      chain_cells, strict=True)
                                                    if c["stamp_lost"]],
                                     "dropped": sorted({n for c in chain_cells
                                                        for n in c["dropped"].split()})}
                matrix.append({"variant": name, "component": PROXY, "case": case["name"],
                               "rfc": case["verdict"], "group": case["group"],
                               "legacy": case["legacy"], "verdict": pv})
            else:
                per[case["name"]] = {"chains": {k: c["verdict"] for k, c in
                                                zip(setting["backends"], chain_cells, strict=True)}}
        variants[name] = _variant_metrics(cases, per, proxied, setting["backends"])
    return Analysis(variants, {"matrix": matrix}, summary)


def _variant_metrics(cases: list[dict], per: dict[str, dict], proxied: bool,
                     backends: list[str]) -> dict:
    m: dict[str, Any] = {"proxied": proxied, "cases": len(cases)}
    by_name = {c["name"]: c for c in cases}
    for kind in backends:
        verdicts = Counter(per[c]["chains"].get(kind) for c in per)
        for v in VERDICTS:
            m[f"{kind}_{v}"] = verdicts[v]
        m[f"{kind}_desync_cases"] = [c for c in per if per[c]["chains"].get(kind) == "desync"]
        m[f"{kind}_accepts_must_reject"] = [
            c for c in per if by_name[c]["verdict"] == "reject"
            and per[c]["chains"].get(kind) in ("accept", "normalise")]
    if not proxied:
        return m
    pv = {c: per[c]["proxy"] for c in per}
    m["proxy_verdicts"] = pv
    m["proxy_forwarded"] = sorted(c for c, v in pv.items() if v != "reject")
    m["rfc_exceptions"] = sorted(
        c for c, v in pv.items()
        if (by_name[c]["verdict"] == "reject" and v != "reject")
        or (by_name[c]["verdict"] == "normalise" and v == "accept"))
    legacy = [c for c in cases if c["legacy"]]
    m["legacy_cases"] = len(legacy)
    m["legacy_rejected"] = sorted(c["name"] for c in legacy if pv[c["name"]] == "reject")
    m["legacy_altered"] = sorted(c["name"] for c in legacy
                                 if pv[c["name"]] == "normalise"
                                 or (c["legacy"] == "case"
                                     and not all(per[c["name"]]["case_kept"] or [False])))
    m["legacy_broken_share"] = (len(set(m["legacy_rejected"]) | set(m["legacy_altered"]))
                                / len(legacy)) if legacy else None
    case_cases = [c["name"] for c in legacy if c["legacy"] == "case"]
    m["case_cases"] = len(case_cases)
    m["case_kept"] = sorted(c for c in case_cases
                            if per[c]["case_kept"] and all(per[c]["case_kept"]))
    m["case_lowered"] = sorted(c for c in case_cases
                               if per[c]["case_kept"] and not any(per[c]["case_kept"]))
    m["dropped"] = {c: per[c]["dropped"] for c in per if per[c]["dropped"]}
    m["read_differently"] = {kind: sorted(c for c in m["proxy_forwarded"]
                                          if per[c]["chains"].get(kind) in ("desync", "reject")
                                          or kind in per[c]["stamp_lost"])
                             for kind in backends}
    return m


def load_json_rows(text: str) -> list[dict]:
    """A backend's JSON-lines log as rows."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
