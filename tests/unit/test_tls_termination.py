"""tls-termination's analysis and claims on synthetic raw data, its predictions against
hand-computed values, its PKI, and the handshake client against a real HAProxy on loopback.

Each variant's raw data is a constant-rate schedule of handshakes whose outcome, served
serial and staple follow the scenario (`scenario` functions of the start time and profile);
every claim is shown holding on the scenario as HAProxy and OpenSSL behave, and not holding
with its failure put into the data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.tls_termination import EXPERIMENT, pki, profiles
from experiments.tls_termination.params import (
    BAD,
    CA_ROTATE,
    COMMIT_EXPIRED,
    INSTALL,
    RELOAD,
    RESTART,
    ROTATE,
    ROTATE_NO_OCSP,
    SET_OCSP,
    Params,
    quick,
)
from lblab.errors import UsageError
from lblab.params import apply_overrides
from lblab.raw import Raw
from lblab.workloads.tls_client import TlsClientConfig, context, handshake, schedule, staple_good

P = quick()          # 40 handshakes/s, 4 s variants, event at 1.5 s, lifetime 2 s, stale at 2 s
ORIGIN = 1000.0      # wall-clock t = 0
A, B = 1001, 1101    # baseline serials of a.lab and b.lab
SUCCESS = "Committing /x/tls-a.lab.pem.\nSuccess!"
REFUSED = ("inconsistencies between private key and certificate loaded '/x/tls-a.lab.pem'.\n"
           "Can't commit /x/tls-a.lab.pem!")


def records(variant: str, scenario, p: Params = P) -> list[dict]:
    """One row per scheduled handshake; scenario(t, profile) -> (outcome, serial, staple)."""
    n = len(profiles(variant))
    rows = []
    cfg = TlsClientConfig(host="x", rate=p.rate, duration_s=p.seconds(variant))
    for i, t in enumerate(schedule(cfg)):
        start = t + 0.0004
        outcome, serial, staple = scenario(start, i % n)
        rows.append({"id": i, "profile": i % n, "intended_s": t, "start_s": start,
                     "handshake_ms": 3.1, "done_s": start + 0.004, "outcome": outcome,
                     "serial": serial, "staple": staple,
                     "status": 200 if outcome == "ok" else None, "detail": None})
    return rows


def timeline(*events: tuple[str, float, float]) -> dict:
    return {"origin_wall": ORIGIN, "client_boot_s": 0.3, "problems": [],
            "events": [{"what": w, "at": round(f, 1), "fired": f, "done": d, "drift_s": 0.0,
                        "slack_s": 0.5, "error": ""} for w, f, d in events]}


def base_tls(**more) -> dict:
    return {"baseline_a.lab": A, "baseline_b.lab": B, **more}


# -- well-behaved scenarios (as measured on HAProxy 2.6.12 / OpenSSL 3.0) -------------------
def expiry(fail_before: float = 99.0, ok_after: float = 99.0, late: float = 0.0,
           reply: str = SUCCESS) -> dict:
    na = P.install_at + P.lifetime_s          # notAfter on the clock: 2.5 s
    ce = P.commit_expired_at                  # 4.5 s

    def sc(t, _k):
        if t < P.install_at:
            return ("ok", A, False)
        serial = 1002 if t < ce else 1003
        if t < na + late and not fail_before <= t < fail_before + 0.01:
            return ("ok", serial, False)
        if ok_after <= t < ok_after + 0.3:
            return ("ok", serial, False)
        return ("verify:expired", serial, False)

    tls = base_tls(**{INSTALL: {"serial": 1002, "not_after_wall": ORIGIN + na,
                                "reply": SUCCESS},
                      COMMIT_EXPIRED: {"serial": 1003, "not_after_wall": ORIGIN - 60,
                                       "reply": reply}})
    return {"records": records("expiry", sc),
            "timeline": timeline((INSTALL, 0.5001, 0.51), (COMMIT_EXPIRED, ce + 1e-4, ce + .01)),
            "tls": tls}


def rotation(variant: str, what: str, *, fail_at: float = 99.0, old_after: bool = False,
             new_serial: bool = True, reply: str = SUCCESS, lost: tuple = ()) -> dict:
    at, done = P.event_at + 1e-4, P.event_at + (0.25 if what == RESTART else 0.02)

    def sc(t, _k):
        if lost and lost[0] <= t < lost[1]:
            return ("refused", None, False)
        if fail_at <= t < fail_at + 0.01:
            return ("reset", None, False)
        serial = 1002 if (t >= done and new_serial and not old_after) else A
        return ("ok", serial, False)

    info = {"serial": 1002, "reply": reply}
    if what == RESTART:
        info.update(stop_wall=ORIGIN + at, stopped_wall=ORIGIN + at + 0.05,
                    listening_wall=ORIGIN + done)
    return {"records": records(variant, sc), "timeline": timeline((what, at, done)),
            "tls": base_tls(**{what: info})}


def sni(strict: bool, p2: str = "", p1_serial: int = B, p0: str = "ok") -> dict:
    def sc(_t, k):
        if k == 0:
            return (p0, A, False)
        if k == 1:
            return ("ok", p1_serial, False)
        if p2:
            return (p2, A if p2 != "handshake_failed" else None, False)
        return ("handshake_failed", None, False) if strict else ("hostname", A, False)

    return {"records": records("sni-strict" if strict else "sni", sc), "timeline": timeline(),
            "tls": base_tls()}


def ocsp(stop_at: float | None = None, must_ignores: bool = False, plain_fail: float = 99.0,
         refresh_fails: bool = False, rotation_keeps: bool = False) -> dict:
    stale = 2.0                                # nextUpdate - 300 s on the clock
    stop = stale + 1.0 if stop_at is None else stop_at
    refresh, rotate = P.ocsp_fresh_s + 1.5, P.ocsp_fresh_s + 2.5

    def sc(t, k):
        serial = 1002 if t >= rotate + 0.01 else A
        staple = not (stop <= t < refresh + 0.01 or (t >= rotate + 0.01 and not rotation_keeps))
        if refresh_fails and refresh + 0.01 <= t < rotate:
            staple = False
        if k == 1:
            return ("reset" if plain_fail <= t < plain_fail + 0.06 else "ok", serial, staple)
        return ("ok" if staple or must_ignores else "no_staple", serial, staple)

    tls = base_tls(**{"ocsp-short": {"stale_wall": ORIGIN + stale,
                                     "next_update_wall": ORIGIN + stale + 300},
                      SET_OCSP: {"reply": "OCSP Response updated!"},
                      ROTATE_NO_OCSP: {"serial": 1002, "reply": SUCCESS}})
    return {"records": records("ocsp", sc),
            "timeline": timeline(("ocsp-short", 0.2001, 0.21), (SET_OCSP, refresh, refresh + .01),
                                 (ROTATE_NO_OCSP, rotate, rotate + 0.01)),
            "tls": tls}


def mtls(variant: str, *, ok_after: float = 99.0, down_after: float | None = 0.35,
         check: str = "L6RSP", fail_at: float = 99.0) -> dict:
    at, done = P.event_at + 1e-4, P.event_at + 0.01
    bundle = variant == "mtls-bundle"

    def sc(t, _k):
        if fail_at <= t < fail_at + 0.01:
            return ("http_503", A, False)
        if t >= done and not bundle and not ok_after <= t < ok_after + 0.5:
            return ("http_503", A, False)
        return ("ok", A, False)

    samples = []
    for i in range(int(P.run_s / 0.05)):
        t = i * 0.05
        down = down_after is not None and t >= at + down_after
        samples.append({"t": round(t, 3), **{f"b{j}_status": "DOWN" if down else "UP"
                                             for j in (1, 2)},
                        **{f"b{j}_check": check if down else "L7OK" for j in (1, 2)}})
    return {"records": records(variant, sc), "timeline": timeline((CA_ROTATE, at, done)),
            "tls": base_tls(**{CA_ROTATE: {"serials": [2001, 2002]}}), "servers": samples}


def healthy() -> dict:
    return {"expiry": expiry(), "rotate-runtime": rotation("rotate-runtime", ROTATE),
            "bad-rotation": rotation("bad-rotation", BAD, new_serial=False, reply=REFUSED),
            "rotate-reload": rotation("rotate-reload", RELOAD),
            "restart": rotation("restart", RESTART, lost=(P.event_at, P.event_at + 0.25)),
            "sni": sni(False), "sni-strict": sni(True), "ocsp": ocsp(),
            "mtls-ca": mtls("mtls-ca"), "mtls-bundle": mtls("mtls-bundle", down_after=None)}


def raw_of(variants: dict) -> Raw:
    tables = {v: {"tls-records": d["records"], **({"servers": d["servers"]}
                                                   if "servers" in d else {})}
              for v, d in variants.items()}
    docs = {v: {"timeline": d["timeline"], "tls": d["tls"]} for v, d in variants.items()}
    return Raw.of(tables=tables, docs=docs)


def verdicts(variants: dict, p: Params = P) -> dict:
    claims = EXPERIMENT.claims(p, EXPERIMENT.analyse(p, raw_of(variants)))
    return {c.id: c for c in claims}


# -- every claim holds on the well-behaved scenarios ----------------------------------------
def test_every_claim_holds_when_haproxy_and_openssl_behave():
    found = verdicts(healthy())
    assert len(found) == 26
    failing = {i: (c.predicted, c.measured) for i, c in found.items() if not c.holds}
    assert not failing


# -- and each fails with its failure injected -------------------------------------------------
CASES = {
    "expiry-before": ("expiry", lambda: expiry(fail_before=1.0)),
    "expiry-after": ("expiry", lambda: expiry(ok_after=3.6)),
    "expiry-edge": ("expiry", lambda: expiry(late=1.2)),
    "expiry-commit-accepted": ("expiry", lambda: expiry(reply=REFUSED)),
    "rotate-runtime-failures": ("rotate-runtime",
                                lambda: rotation("rotate-runtime", ROTATE, fail_at=1.55)),
    "rotate-runtime-new-serial": ("rotate-runtime",
                                  lambda: rotation("rotate-runtime", ROTATE, old_after=True)),
    "rotate-reload-failures": ("rotate-reload",
                               lambda: rotation("rotate-reload", RELOAD, fail_at=1.55)),
    "rotate-reload-new-serial": ("rotate-reload",
                                 lambda: rotation("rotate-reload", RELOAD, old_after=True)),
    "bad-rotation-refused": ("bad-rotation", lambda: rotation("bad-rotation", BAD,
                                                              new_serial=False)),
    "bad-rotation-old-serves": ("bad-rotation", lambda: rotation("bad-rotation", BAD,
                                                                 reply=REFUSED)),
    "bad-rotation-failures": ("bad-rotation", lambda: rotation(
        "bad-rotation", BAD, new_serial=False, reply=REFUSED, fail_at=2.0)),
    "restart-lost": ("restart", lambda: rotation("restart", RESTART,
                                                 lost=(P.event_at, P.event_at + 0.6))),
    "restart-new-serial": ("restart", lambda: rotation(
        "restart", RESTART, old_after=True, lost=(P.event_at, P.event_at + 0.25))),
    "sni-names": ("sni", lambda: sni(False, p1_serial=A)),
    "sni-missing-hostname": ("sni", lambda: sni(False, p2="ok")),
    "sni-strict-refused": ("sni-strict", lambda: sni(True, p2="hostname")),
    "sni-strict-names": ("sni-strict", lambda: sni(True, p0="handshake_failed")),
    "ocsp-stops-at": ("ocsp", lambda: ocsp(stop_at=1.5)),
    "ocsp-stale-must-staple": ("ocsp", lambda: ocsp(must_ignores=True)),
    "ocsp-ordinary": ("ocsp", lambda: ocsp(plain_fail=1.0)),
    "ocsp-restored": ("ocsp", lambda: ocsp(refresh_fails=True)),
    "ocsp-rotation-drops": ("ocsp", lambda: ocsp(rotation_keeps=True)),
    "mtls-ca-503": ("mtls-ca", lambda: mtls("mtls-ca", ok_after=2.0)),
    "mtls-ca-down": ("mtls-ca", lambda: mtls("mtls-ca", down_after=0.6)),
    "mtls-ca-l6rsp": ("mtls-ca", lambda: mtls("mtls-ca", check="L4CON")),
    "mtls-bundle-0": ("mtls-bundle", lambda: mtls("mtls-bundle", down_after=0.35)),
}


def test_every_claim_has_a_failure_case():
    assert set(CASES) == set(verdicts(healthy()))


@pytest.mark.parametrize("claim_id", sorted(CASES))
def test_claim_does_not_hold_with_its_failure_injected(claim_id):
    variant, make = CASES[claim_id]
    data = healthy()
    data[variant] = make()
    c = verdicts(data)[claim_id]
    assert not c.holds and c.verdict == "does not hold", (c.predicted, c.measured)


def test_mtls_bundle_counts_failed_requests_too():
    data = healthy()
    data["mtls-bundle"] = mtls("mtls-bundle", down_after=None, fail_at=2.0)
    assert not verdicts(data)["mtls-bundle-0"].holds


def test_claims_on_variants_not_run_are_skipped():
    found = verdicts({"expiry": expiry()})
    assert all(found[i].holds for i in ("expiry-before", "expiry-after", "expiry-edge"))
    others = [c for i, c in found.items() if not i.startswith("expiry")]
    assert others and all(c.skipped and "not run" in c.skipped for c in others)


# -- predictions from the parameters, by hand -------------------------------------------------
def test_predictions_by_hand():
    found = verdicts(healthy())
    # restart: 40/s x gap 0.25 s = 10 handshakes, ± 40 x 2 x 0.05 + 1 = 5
    assert found["restart-lost"].predicted == pytest.approx(10.0, abs=0.01)
    assert found["restart-lost"].tolerance == pytest.approx(5.0)
    assert found["restart-lost"].measured == 10
    a = EXPERIMENT.analyse(P, raw_of(healthy()))
    assert a.variants["restart"]["client_gap_s"] == pytest.approx(0.25)   # 10 x 0.025 s
    # expiry and staple instants: [0, 1 s + 1/40 s]
    assert (found["expiry-edge"].predicted, found["expiry-edge"].upper) == (0.0, 1.025)
    assert found["ocsp-stops-at"].upper == 1.025
    assert found["ocsp-stops-at"].measured == pytest.approx(1.0004, abs=1e-3)
    # mTLS detection: fall 2 x inter 0.2 s + one 0.05 s sample
    assert found["mtls-ca-down"].predicted == pytest.approx(0.45)
    assert found["mtls-ca-down"].measured == pytest.approx(0.3999, abs=0.06)
    # one handshake of a window's n: rotate-runtime's after-window [1.52, 4) holds the
    # handshakes started at 1.5254 ... 3.9754, every 0.025 s: 99
    assert found["rotate-runtime-new-serial"].tolerance == pytest.approx(1 / 99)


def test_expiry_windows_put_not_after_on_the_clock():
    a = EXPERIMENT.analyse(P, raw_of({"expiry": expiry()}))
    m = a.variants["expiry"]
    assert m["not_after_t"] == pytest.approx(2.5)
    assert m["before_n"] == 100 and m["before_failed"] == 0     # [0, 2.5) at 40/s
    assert m["after_n"] == 40                                    # [3.5, 4.5)
    assert m["expired_served_share"] == 1.0


def test_variants_and_their_durations():
    plans = {v.name: v for v in EXPERIMENT.variants(P)}
    assert list(plans) == list(P.variants)
    assert plans["expiry"].seconds == pytest.approx(0.5 + 2 + 4 + 1)
    assert plans["ocsp"].seconds == pytest.approx(2 + 4 + 1)
    assert [x["sni"] for x in plans["sni"].setting] == ["a.lab", "b.lab", ""]


@pytest.mark.parametrize("change, field", [
    (["event_at=3.5"], "event_at"), (["lifetime_s=0"], "lifetime_s"),
    (["rate=0"], "rate"), (["variants=expiry,nope"], "variants")])
def test_bad_parameters_are_one_line_usage_errors(change, field):
    with pytest.raises(UsageError) as err:
        apply_overrides("tls-termination", P, change)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_quick_run_fits_its_limit():
    total = sum(v.seconds for v in EXPERIMENT.variants(P)) + EXPERIMENT.bring_up_s
    assert total < 75   # leaves the 90 s limit room for per-variant restarts and teardown


# -- the PKI --------------------------------------------------------------------------------
def test_pki_serials_lifetimes_and_extensions():
    now = 1_700_000_000.7
    ca = pki.CA.make("t", 1, now)
    leaf = pki.issue(ca, 77, ("a.lab",), now - 60, now + 5, must_staple=True)
    assert leaf.cert.serial_number == 77
    assert leaf.not_after == 1_700_000_005      # whole seconds
    from cryptography import x509
    assert leaf.cert.extensions.get_extension_for_class(x509.TLSFeature)
    plain = pki.issue(ca, 78, ("b.lab",), now - 60, now + 5)
    with pytest.raises(x509.ExtensionNotFound):
        plain.cert.extensions.get_extension_for_class(x509.TLSFeature)
    assert plain.pem().count("BEGIN CERTIFICATE") == 2 and "PRIVATE KEY" in plain.pem()


def test_ocsp_response_is_good_until_next_update():
    now = time.time()
    ca = pki.CA.make("t", 1, now)
    leaf = pki.issue(ca, 5, ("a.lab",), now - 60, now + 3600)
    der = pki.ocsp_response(leaf, now - 60, now + 100)
    assert staple_good(der, now)
    assert not staple_good(der, now + 101)
    assert not staple_good(b"not der", now)


def test_dates_round_trip():
    assert pki.wall_of(pki.utc(1_700_000_000.9)) == 1_700_000_000
    assert pki.utc(0) == dt.datetime(1970, 1, 1)


# -- the handshake client against a real HAProxy on loopback ----------------------------------
@pytest.fixture
def haproxy(tmp_path):
    if not shutil.which("haproxy"):
        pytest.skip("haproxy is not installed")
    from lbnodes.l7 import L7Config, RuntimeAPI, Server, render

    now = time.time()
    ca = pki.CA.make("loopback CA", 1, now)
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    a = pki.issue(ca, 100, ("a.lab",), now - 60, now + 3600)
    b = pki.issue(ca, 200, ("b.lab",), now - 60, now + 3600)
    a.write(tmp_path / "a.pem")
    b.write(tmp_path / "b.pem")
    (tmp_path / "crt.list").write_text(f"{tmp_path}/a.pem\n{tmp_path}/b.pem\n")
    port = random.randint(20000, 40000)
    backend = subprocess.Popen([sys.executable, "-m", "http.server", str(port + 1), "--bind",
                                "127.0.0.1"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    cfg = L7Config("t", "127.0.0.1", port, (Server("b1", "127.0.0.1", port + 1),),
                   tls_crt_list=str(tmp_path / "crt.list"))
    (tmp_path / "h.cfg").write_text(render(cfg, str(tmp_path / "s.sock")))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "h.cfg")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from lblab.ready import wait_until

        client = TlsClientConfig(host="127.0.0.1", port=port, ca_file=str(tmp_path / "ca.pem"))

        def answers() -> bool:
            return (tmp_path / "s.sock").exists() and handshake(
                client, context(client.ca_file, False),
                {"sni": "a.lab", "expect": "a.lab"})["outcome"] == "ok"

        wait_until(answers, timeout=10, what="loopback haproxy to answer")
        yield {"api": RuntimeAPI(tmp_path / "s.sock"), "ca": ca, "a": a, "b": b,
               "client": client, "path": str(tmp_path / "a.pem")}
    finally:
        proc.terminate()
        backend.terminate()
        proc.wait(timeout=5)
        backend.wait(timeout=5)


def _shake(h, **profile):
    prof = {"sni": "a.lab", "expect": "a.lab", **profile}
    return handshake(h["client"], context(h["client"].ca_file, bool(prof.get("must_staple"))),
                     prof)


def test_client_sees_serials_sni_and_host_names(haproxy):
    assert _shake(haproxy)["serial"] == 100
    assert _shake(haproxy, sni="b.lab", expect="b.lab")["serial"] == 200
    no_sni = _shake(haproxy, sni="", expect="b.lab")
    assert (no_sni["outcome"], no_sni["serial"]) == ("hostname", 100)
    assert _shake(haproxy, must_staple=True)["outcome"] == "no_staple"


def test_haproxy_commits_an_expired_certificate_and_refuses_a_wrong_key(haproxy):
    api, path, now = haproxy["api"], haproxy["path"], time.time()
    expired = pki.issue(haproxy["ca"], 101, ("a.lab",), now - 600, now - 60)
    api.set_ssl_cert(path, expired.pem())
    assert "Success" in api.commit_ssl_cert(path)
    seen = _shake(haproxy)
    assert (seen["outcome"], seen["serial"]) == ("verify:expired", 101)
    fresh = pki.issue(haproxy["ca"], 102, ("a.lab",), now - 60, now + 3600)
    api.set_ssl_cert(path, fresh.pem(key=haproxy["b"].key))
    assert "Can't commit" in api.commit_ssl_cert(path)
    api.abort_ssl_cert(path)
    assert _shake(haproxy)["serial"] == 101


def test_params_are_frozen_and_validated():
    with pytest.raises(UsageError):
        Params(event_at=10.0, run_s=4.0)
    assert dataclasses.replace(P, rate=80.0).rate == 80.0
    assert Path(pki.__file__).parent.name == "tls_termination"
