"""tls-termination's claims: what each scenario predicts from the schedule, the certificates'
validity and HAProxy's documented behaviour, against what the client saw in its handshakes
(and, for mTLS, what HAProxy's stats socket said about its servers).

Tolerances: a share predicted to be exactly 0 or 1 (the mechanism is deterministic) may miss
by one handshake of the window (1/n: a handshake at the window's edge), and a count
predicted 0 must be 0. Instants have the resolution of what decides them: X.509 times and
OpenSSL's clock are whole seconds (1 s), plus the schedule's spacing (1/rate) for when the
first handshake after the instant comes.
"""

from __future__ import annotations

from typing import Any

from lblab import claims as C
from lblab.driver import Analysis

from .params import POLL_S, Params

SAMPLE_S = 0.05
"""The mtls variants' server-state sampling interval."""


def _one(id: str, statement: str, m: dict, key: str, n_key: str, predicted: float,
         why: str) -> C.Claim:
    """A share predicted to be exactly `predicted` (0 or 1), allowed one handshake of n."""
    n = m.get(n_key) or 0
    tol = 1 / max(n, 1)
    return C.near(id, statement, predicted, m.get(key), tol,
                  f"{why}; tolerance one handshake of n = {n}")


def _none(id: str, statement: str, measured: Any, why: str) -> C.Claim:
    return C.within(id, statement, 0, measured, 0.0, why)


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    v = a.variants
    out: list[C.Claim] = []
    edge = 1.0 + 1.0 / p.rate

    def skip_if(*names: str) -> str:
        return C.missing_variants(v, *names)

    # expiry
    ids = [("expiry-before", "0 verification failures before the certificate's notAfter"),
           ("expiry-after", "100 % of handshakes fail verification (expired) after notAfter"),
           ("expiry-edge", "the first failure comes within the clock's resolution of notAfter"),
           ("expiry-commit-accepted", "HAProxy 2.6 commits an expired certificate "
                                      "('Success!') and serves it")]
    if (why := skip_if("expiry")) or "not_after_t" not in v["expiry"]:
        out += [C.skipped(i, s, why or "the expiring certificate was not installed")
                for i, s in ids]
    else:
        m = v["expiry"]
        out.append(_none(ids[0][0], ids[0][1], m["before_failed"],
                         f"{m['before_n']} handshakes before notAfter "
                         f"(t = {m['not_after_t']:.2f} s, lifetime {p.lifetime_s} s)"))
        out.append(_one(ids[1][0], ids[1][1], m, "after_expired_share", "after_n", 1.0,
                        "OpenSSL rejects a leaf whose notAfter has passed "
                        "(X509_V_ERR_CERT_HAS_EXPIRED); the window starts 1 s after notAfter "
                        "(the clock's resolution) and ends at the next commit"))
        out.append(C.between(ids[2][0], ids[2][1], 0.0, edge, m["first_failure_offset_s"],
                             f"s after notAfter; [0, 1 s + 1/rate]: X.509 and OpenSSL's "
                             f"clock are whole seconds, handshakes every {1 / p.rate:.3f} s"))
        accepted = (1.0 if m["expired_commit_success"] and m["expired_served_share"] == 1.0
                    else 0.0)
        out.append(C.within(ids[3][0], ids[3][1], 1.0, accepted, 0.0,
                            "1 = commit answered Success and every later handshake got the "
                            "expired serial (HAProxy checks no validity dates)"))

    # runtime rotation, bad rotation, reload
    for name, what in (("rotate-runtime", "set ssl cert + commit ssl cert"),
                       ("rotate-reload", "a master-worker reload")):
        sid = name
        stmts = [(f"{sid}-failures", f"{what} under load: 0 failed handshakes"),
                 (f"{sid}-new-serial", f"the new serial is served from the end of {what} on")]
        if (why := skip_if(name)) or "new_served_after" not in v[name]:
            out += [C.skipped(i, s, why or "the event did not run") for i, s in stmts]
            continue
        m = v[name]
        out.append(_none(stmts[0][0], stmts[0][1], m["failed"],
                         f"{m['handshakes']} handshakes; the listeners are never closed"))
        out.append(_one(stmts[1][0], stmts[1][1], m, "new_served_after", "after_n", 1.0,
                        "the new certificate replaces the old for every new handshake"))
    bad = [("bad-rotation-refused", "a key that does not match the certificate is refused "
                                    "at commit"),
           ("bad-rotation-old-serves", "the old certificate keeps serving after the refusal"),
           ("bad-rotation-failures", "0 failed handshakes through the failed rotation")]
    if (why := skip_if("bad-rotation")) or "commit_refused" not in v["bad-rotation"]:
        out += [C.skipped(i, s, why or "the event did not run") for i, s in bad]
    else:
        m = v["bad-rotation"]
        out.append(C.within(bad[0][0], bad[0][1], 1.0, m["commit_refused"], 0.0,
                            f"HAProxy answered: {m['commit_reply'][:90]!r}"))
        out.append(_one(bad[1][0], bad[1][1], m, "old_served_after", "after_n", 1.0,
                        "the transaction is aborted; the committed certificate is unchanged"))
        out.append(_none(bad[2][0], bad[2][1], m["failed"], f"{m['handshakes']} handshakes"))

    # restart
    rs = [("restart-lost", "a stop/start loses about rate x gap handshakes (measured gap)"),
          ("restart-new-serial", "the restarted HAProxy serves the new certificate")]
    if (why := skip_if("restart")) or "gap_s" not in v["restart"]:
        out += [C.skipped(i, s, why or "the restart did not run") for i, s in rs]
    else:
        m = v["restart"]
        predicted = p.rate * m["gap_s"]
        tol = p.rate * 2 * POLL_S + 1
        out.append(C.near(rs[0][0], rs[0][1], predicted, m["failed"], tol,
                          f"{p.rate:g}/s x gap {m['gap_s']:.3f} s (stop to listening); "
                          f"± rate x 2 polls of {POLL_S:g} s (the gap's measurement "
                          f"overstates the real one by up to two polls) + 1 handshake"))
        out.append(_one(rs[1][0], rs[1][1], m, "new_served_after", "after_n", 1.0,
                        "it loaded the certificate written before the restart"))

    # sni
    sni = [("sni-names", "SNI a.lab gets a.lab's and b.lab gets b.lab's certificate, all "
                         "verified"),
           ("sni-missing-hostname", "a client without SNI gets the default (a.lab) "
                                    "certificate and fails host-name verification for b.lab"),
           ("sni-strict-refused", "with strict-sni the client without SNI is refused at "
                                  "handshake"),
           ("sni-strict-names", "with strict-sni, clients with SNI are unaffected")]
    if why := skip_if("sni"):
        out += [C.skipped(i, s, why) for i, s in sni[:2]]
    else:
        m = v["sni"]
        named = min(m["p0_served_a"] or 0, m["p0_ok_share"] or 0, m["p1_served_b"] or 0,
                    m["p1_ok_share"] or 0)
        out.append(C.near(sni[0][0], sni[0][1], 1.0, named, 1 / max(1, m["p0_n"]),
                          "the smallest of the four shares (served and verified per name); "
                          f"tolerance one handshake of n = {m['p0_n']}"))
        both = min(m["p2_hostname_share"] or 0, m["p2_served_a"] or 0)
        out.append(C.near(sni[1][0], sni[1][1], 1.0, both, 1 / max(1, m["p2_n"]),
                          "the smaller of: host-name failures, served a.lab's serial; "
                          f"tolerance one handshake of n = {m['p2_n']}"))
    if why := skip_if("sni-strict"):
        out += [C.skipped(i, s, why) for i, s in sni[2:]]
    else:
        m = v["sni-strict"]
        out.append(_one(sni[2][0], sni[2][1], m, "p2_refused_share", "p2_n", 1.0,
                        "HAProxy sends a handshake alert when no certificate matches"))
        named = min(m["p0_ok_share"] or 0, m["p1_ok_share"] or 0)
        out.append(C.near(sni[3][0], sni[3][1], 1.0, named, 1 / max(1, m["p0_n"]),
                          f"the smaller of the two names' ok shares; one handshake of "
                          f"n = {m['p0_n']}"))

    out += _ocsp(p, v, edge)
    out += _mtls(p, v)
    return out


def _ocsp(p: Params, v: dict, edge: float) -> list[C.Claim]:
    ids = [("ocsp-stops-at", "HAProxy stops stapling at nextUpdate - 300 s"),
           ("ocsp-stale-must-staple", "with no fresh staple, must-staple clients fail 100 %"),
           ("ocsp-ordinary", "ordinary clients never fail (0 failures through the run)"),
           ("ocsp-restored", "set ssl ocsp-response restores the staple: must-staple 0 % "
                             "failures"),
           ("ocsp-rotation-drops", "a rotation without the .ocsp drops the staple: "
                                   "must-staple clients fail 100 %")]
    why = C.missing_variants(v, "ocsp")
    if why or "stale_t" not in v["ocsp"]:
        return [C.skipped(i, s, why or "the short response was not installed") for i, s in ids]
    m = v["ocsp"]
    return [
        C.between(ids[0][0], ids[0][1], 0.0, edge, m["staple_stop_offset_s"],
                  f"s after nextUpdate - 300 s (t = {m['stale_t']:.2f} s); [0, 1 s + "
                  f"1/rate]: HAProxy compares whole seconds"),
        _one(ids[1][0], ids[1][1], m, "stale_must_fail_share", "stale_n", 1.0,
             "the refresher did not run: HAProxy 2.6 cannot fetch responses (2.8's "
             "ocsp-update)"),
        _none(ids[2][0], ids[2][1], m["ordinary_failed"],
              f"{m['ordinary_n']} handshakes that do not require a staple"),
        _one(ids[3][0], ids[3][1], m, "refreshed_must_fail_share", "refreshed_n", 0.0,
             f"HAProxy answered {m['refresh_reply'][:40]!r}"),
        _one(ids[4][0], ids[4][1], m, "dropped_must_fail_share", "dropped_n", 1.0,
             "HAProxy keeps no OCSP state for a certificate committed without it"),
    ]


def _mtls(p: Params, v: dict) -> list[C.Claim]:
    bound = p.check_fall * p.check_inter_ms / 1000 + SAMPLE_S
    ids = [("mtls-ca-503", "after the backends' CA rotates, 100 % of requests get 503"),
           ("mtls-ca-down", "every server is DOWN within fall x inter of the rotation"),
           ("mtls-ca-l6rsp", "the failing check says L6RSP (TLS layer)"),
           ("mtls-bundle-0", "with old and new CA in ca-file: 0 failed requests, no server "
                             "DOWN")]
    out: list[C.Claim] = []
    if (why := C.missing_variants(v, "mtls-ca")) or "after_n" not in v["mtls-ca"]:
        out += [C.skipped(i, s, why or "the rotation did not run") for i, s in ids[:3]]
    else:
        m = v["mtls-ca"]
        out.append(_one(ids[0][0], ids[0][1], m, "after_503_share", "after_n", 1.0,
                        "every server connection is a full handshake (no-ssl-reuse) that "
                        "fails verification, then no server is UP"))
        out.append(C.at_most(ids[1][0], ids[1][1], bound, m["detection_s"],
                             note=f"s; fall {p.check_fall} x inter {p.check_inter_ms} ms + "
                                  f"one sample ({SAMPLE_S:g} s)"))
        out.append(C.within(ids[2][0], ids[2][1], 1.0, m["down_l6rsp_share"], 0.0,
                            "share of servers whose check status is L6RSP when all are DOWN"))
    if (why := C.missing_variants(v, "mtls-bundle")) or "after_n" not in v["mtls-bundle"]:
        out.append(C.skipped(ids[3][0], ids[3][1], why or "the rotation did not run"))
    else:
        m = v["mtls-bundle"]
        out.append(_none(ids[3][0], ids[3][1], m["failed"] + m["ever_down"],
                         f"failed requests ({m['failed']} of {m['handshakes']}) + 1 if any "
                         "server was ever DOWN"))
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    v = a.variants
    out = [f"Certificate lifetimes: the expiring one {p.lifetime_s} s from its installation "
           f"at t = {p.install_at:g} s, every other one 30 days; OCSP responses: one stale "
           f"{p.ocsp_fresh_s} s into the run (nextUpdate = then + 300 s), the refreshed one "
           "1 h. Keys ECDSA P-256, one private CA per run (pki.py)."]
    if "restart" in v and "gap_s" in v["restart"]:
        m = v["restart"]
        out.append(f"restart: stop to listening took {m['gap_s'] * 1000:.0f} ms (stop "
                   f"{m['stop_s'] * 1000:.0f} ms), the client saw failures over "
                   f"{m.get('client_gap_s', 0) * 1000:.0f} ms; {m['failed']} handshakes "
                   f"failed, {m['outcomes']}.")
    if "rotate-reload" in v and "event_s" in v["rotate-reload"]:
        out.append(f"rotate-reload: the master-worker reload took "
                   f"{v['rotate-reload']['event_s'] * 1000:.0f} ms to a new worker; "
                   f"{v['rotate-reload']['failed']} handshakes failed.")
    return out
