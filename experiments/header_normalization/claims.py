"""header-normalization's claims. The corpus is deterministic: every prediction is a count
computed from the corpus (its RFC verdicts, groups and bytes) and HAProxy's documented rules,
and is compared with no tolerance (no sampling: one request per case and component)."""

from __future__ import annotations

from typing import Any

from lblab import claims as C
from lblab.driver import Analysis

UPSTREAM_REJECTS = {
    "nul-in-value": "a NUL byte in a field value",
    "chunk-bare-lf": "a chunk-size line ended by a bare LF",
}
"""Cases Debian's HAProxy 2.6.12 forwards that upstream HAProxy rejects since 2024
(/work/shared/PLATFORM.md, "HAProxy 2.6.12 (Debian 12)")."""


def _names(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def _cases(a: Analysis) -> list[dict]:
    return a.summary["cases"]


def claims(p: Any, a: Analysis) -> list[C.Claim]:
    v = a.variants
    out: list[C.Claim] = []
    out.append(_strict_rfc(a))
    for kind in p.backends:
        cid, text = (f"strict-desync-{kind}",
                     f"no desync through strict HAProxy to {kind}: the backend reads no "
                     "request HAProxy did not forward as one")
        why = C.missing_variants(v, "strict")
        out.append(C.skipped(cid, text, why) if why else C.at_most(
            cid, text, 0, len(v["strict"][f"{kind}_desync_cases"]),
            note=f"cases: {_names(v['strict'][f'{kind}_desync_cases'])}; a desync is a "
                 "request read without HAProxy's stamp, or a stamp inside a body"))
    out += _lenient(a)
    out += _case_adjust(a)
    out += _restrict(a)
    return out


def _strict_rfc(a: Analysis) -> C.Claim:
    cid = "strict-rfc"
    text = ("strict HAProxy rejects every case RFC 9112/9110 say must be rejected and "
            "forwards none of those they say must be repaired unchanged")
    why = C.missing_variants(a.variants, "strict")
    if why:
        return C.skipped(cid, text, why)
    must = [c["name"] for c in _cases(a) if c["verdict"] in ("reject", "normalise")]
    exc = a.variants["strict"]["rfc_exceptions"]
    return C.at_most(cid, text, 0, len(exc),
                     note=f"{len(must)} cases marked reject or normalise; exceptions: "
                          f"{_names(exc)}")


def lenient_expected(a: Analysis) -> dict[str, dict]:
    """The framing cases lenient HAProxy should forward where strict HAProxy refuses them,
    computed from the bytes (corpus.lenient_framing): those whose only defect is a character
    the option relaxes, each with how HAProxy then frames it."""
    return {c["name"]: c["lenient"] for c in _cases(a)
            if c["group"] == "framing" and c.get("lenient")}


def _framing_text(name: str, how: dict, a: Analysis) -> str:
    """How HAProxy frames a relaxed case (from the bytes), what the backends that served it
    read (measured), and the reading that would desync."""
    unknown = ", ".join(f"'{n}'" for n in how["unknown"]) or "none"
    seen = [f"{r['component']} read a {r['body_len']}-byte body" for r in a.series["matrix"]
            if r["variant"] == "lenient" and r["case"] == name and r["component"] != "proxy"
            and r["verdict"] != "reject" and r.get("body_len") is not None]
    text = (f"{name} framed by {how['framing']}, {unknown} forwarded as unknown "
            f"({'; '.join(seen) or 'no backend served it'})")
    trimmed = {n.strip(" \t") for n in how["unknown"]}
    if "transfer-encoding" in trimmed and how["framing"] != "chunked":
        text += (": a backend that trims the space before the colon reads it chunked, "
                 "and the bytes after the last chunk as a request of its own: a desync")
    elif "content-length" in trimmed:
        text += (": a backend that trims the space before the colon frames it by that "
                 "Content-Length instead: a desync")
    return text


def lenient_relaxed(a: Analysis) -> list[str]:
    """The framing cases strict HAProxy rejects and lenient HAProxy forwards (measured)."""
    strict = a.variants["strict"]["proxy_verdicts"]
    lenient = a.variants["lenient"]["proxy_verdicts"]
    return sorted(c["name"] for c in _cases(a) if c["group"] == "framing"
                  and strict[c["name"]] == "reject" and lenient[c["name"]] != "reject")


def _lenient(a: Analysis) -> list[C.Claim]:
    v = a.variants
    why = C.missing_variants(v, "strict", "lenient")
    expected = lenient_expected(a)
    t1 = ("lenient parsing (accept-invalid-http-request) forwards exactly the framing cases "
          "strict HAProxy rejects whose only defect is a character the option relaxes (HAProxy "
          "2.6 documents: any character in a header name, the URI's but 0-32 and 127), "
          f"computed from the bytes: {_names(sorted(expected))}")
    t2 = "lenient HAProxy forwards every case strict HAProxy forwards (it only relaxes)"
    if why:
        return [C.skipped("lenient-framing", t1, why), C.skipped("lenient-superset", t2, why)]
    strict, lenient = v["strict"]["proxy_verdicts"], v["lenient"]["proxy_verdicts"]
    framing = [c["name"] for c in _cases(a) if c["group"] == "framing"]
    relaxed = lenient_relaxed(a)
    lost = sorted(c for c in strict if strict[c] != "reject" and lenient[c] == "reject")
    gained = sorted(c for c in strict if strict[c] == "reject" and lenient[c] != "reject")
    how = "; ".join(_framing_text(c, expected[c], a) for c in sorted(set(relaxed) & set(expected)))
    wrong = sorted(set(expected) ^ set(relaxed))
    return [C.at_most("lenient-framing", t1, 0, len(wrong),
                      note=f"{len(framing)} framing cases; predicted from the bytes: "
                           f"{_names(sorted(expected))}; relaxed: {_names(relaxed)}"
                           + (f" ({how})" if how else "")
                           + f"; not as predicted: {_names(wrong)}"),
            C.at_most("lenient-superset", t2, 0, len(lost),
                      note=f"rejected only by lenient: {_names(lost)}; forwarded only by "
                           f"lenient: {_names(gained)}")]


def _case_adjust(a: Analysis) -> list[C.Claim]:
    v = a.variants
    case_cases = [c["name"] for c in _cases(a) if c["legacy"] == "case"]
    n = len(case_cases)
    t1 = (f"strict HAProxy lowercases the header names legacy backends compare: 0 of the "
          f"{n} legacy-case cases reach a backend in the client's case")
    t2 = (f"h1-case-adjust + h1-case-adjust-bogus-server restore them: all {n} reach every "
          "backend that serves them in the client's case")
    out = []
    why = C.missing_variants(v, "strict")
    out.append(C.skipped("strict-lowercases", t1, why) if why else C.at_most(
        "strict-lowercases", t1, 0, n - len(v["strict"]["case_lowered"]),
        note="kept somewhere: "
             f"{_names(sorted(set(case_cases) - set(v['strict']['case_lowered'])))}"))
    why = C.missing_variants(v, "case-adjust")
    out.append(C.skipped("case-adjust-restores", t2, why) if why else C.at_least(
        "case-adjust-restores", t2, n, len(v["case-adjust"]["case_kept"]),
        note=f"restored: {_names(v['case-adjust']['case_kept'])}"))
    return out


def restrict_expected(a: Analysis) -> list[str]:
    """Cases whose every name is a valid token but one has a character other than letters,
    digits and '-': what http-restrict-req-hdr-names acts on (computed from the bytes)."""
    return sorted(c["name"] for c in _cases(a) if c["restricted"])


def _restrict(a: Analysis) -> list[C.Claim]:
    v = a.variants
    out = []
    for name, action in (("restrict-delete", "deletes"), ("restrict-reject", "rejects")):
        cid = f"{name}-acts"
        text = (f"http-restrict-req-hdr-names {name.split('-')[1]} {action} exactly the "
                "requests with a token name outside [A-Za-z0-9-] (computed from the bytes), "
                "compared with strict")
        why = C.missing_variants(v, name, "strict")
        if why:
            out.append(C.skipped(cid, text, why))
            continue
        expected = restrict_expected(a)
        strict = v["strict"]["proxy_verdicts"]
        if action == "deletes":
            base = v["strict"]["dropped"]
            acted = sorted(c for c, names in v[name]["dropped"].items()
                           if set(names) - set(base.get(c, [])))
        else:
            acted = sorted(c for c, pv in v[name]["proxy_verdicts"].items()
                           if pv == "reject" and strict[c] != "reject")
        wrong = sorted(set(expected) ^ set(acted))
        out.append(C.at_most(cid, text, 0, len(wrong),
                             note=f"expected from the bytes: {_names(expected)}; acted on: "
                                  f"{_names(acted)}"))
    return out


def notes(p: Any, a: Analysis) -> list[str]:
    v = a.variants
    out = []
    if "strict" in v:
        exc = v["strict"]["rfc_exceptions"]
        debian = [c for c in exc if c in UPSTREAM_REJECTS]
        own = [c for c in exc if c not in UPSTREAM_REJECTS]
        if debian:
            what = "; ".join(UPSTREAM_REJECTS[c] for c in debian)
            out.append(f"strict-rfc: {_names(debian)} ({what}) are where this Debian build "
                       "differs from upstream HAProxy, which rejects them since 2024; the "
                       f"other exceptions ({_names(own)}) are HAProxy 2.6's own reading")
    if "strict" in v and "lenient" in v:
        expected = lenient_expected(a)
        for c in lenient_relaxed(a):
            what = (_framing_text(c, expected[c], a) if c in expected
                    else f"{c}, which the bytes do not predict")
            out.append(f"lenient relaxes a framing case: {what}")
    for name, m in v.items():
        if not m["proxied"]:
            for kind in p.backends:
                acc = m[f"{kind}_accepts_must_reject"]
                out.append(f"{kind} alone serves {len(acc)} must-reject cases: {_names(acc)}")
            continue
        broken = sorted(set(m["legacy_rejected"]) | set(m["legacy_altered"]))
        out.append(f"{name}: HAProxy forwards {len(m['proxy_forwarded'])} of {m['cases']} "
                   f"cases; legacy cases rejected or altered: {len(broken)} of "
                   f"{m['legacy_cases']} ({_names(broken)})")
        for kind, cases in m["read_differently"].items():
            if cases:
                out.append(f"{name}: {kind} reads {len(cases)} forwarded cases differently "
                           "from HAProxy (refuses it, desyncs, or loses the fields after one "
                           f"it cannot read): {_names(cases)}")
    return out
