"""ecmp-rehash's model, analysis and claims on synthetic raw data: each claim holds when the
data follows the model and fails when its failure is injected."""

from __future__ import annotations

import pytest

from experiments.ecmp_rehash import EXPERIMENT
from experiments.ecmp_rehash.analysis import PROBER, TABLE, analyse_change
from experiments.ecmp_rehash.claims import SURVIVORS
from experiments.ecmp_rehash.model import PHASES, Params, change, predicted, variant_name
from lblab.raw import Raw
from topologies.two_tier import lb_back_ip

P = Params(lbs=3, connections=400, interval_s=0.5)
ORIGIN = 1_000_000.0
"""The prober's ready instant (wall clock): t = 0 of every synthetic variant."""


@pytest.mark.parametrize(("policy", "phase", "expected", "why"), [
    ("modulo_n", "add", 0.75, "h mod 3 == h mod 4 for 3 of every 12 hashes"),
    ("modulo_n", "remove", 2 / 3, "h mod 3 -> h mod 2 over lb1, lb3: 2 of 6 stay"),
    ("hash_threshold", "add", 0.5, "thirds vs quarters overlap 1/4 + 1/6 + 1/12"),
    ("hash_threshold", "remove", 1 / 3, "lb1's and lb3's outer thirds stay"),
    ("hrw", "add", 0.25, "the new index wins 1 in 4"),
    ("hrw", "remove", 0.5, "lb2's third, plus half of lb3's (index 2 renumbered to 1)"),
    ("select15", "add", 0.25, "HRW over stable bucket IDs"),
    ("select15", "remove", 1 / 3, "only the removed node's flows"),
    ("maglev", "add", 0.25, "near 1/(N+1)"),
])
def test_predictions_are_the_policies_own_algorithms(policy, phase, expected, why):
    # 20,000 ideal hashes: a standard error of at most 0.0035
    assert predicted(P, policy, phase) == pytest.approx(expected, abs=0.015), why


def test_select13_is_not_modelled():
    assert predicted(P, "select13", "add") is None


def test_the_prediction_follows_the_parameters():
    assert predicted(Params(lbs=5), "modulo_n", "add") == pytest.approx(5 / 6, abs=0.015)
    assert predicted(Params(lbs=5, remove_index=5), "select15", "remove") == \
        pytest.approx(1 / 5, abs=0.015)


# -- synthetic raw data ----------------------------------------------------------------------
def timeline(what: str, fired: float = 0.5, done: float = 0.52, origin=ORIGIN) -> dict:
    return {"origin_wall": origin, "client_boot_s": 0.3, "problems": [],
            "events": [{"what": what, "at": 0.5, "fired": fired, "done": done,
                        "drift_s": fired - 0.5, "slack_s": 0.5, "error": ""}]}


def row(conn: int, gen: int, t: float, outcome: str, node: int | None) -> dict:
    return {"conn": conn, "generation": gen, "t": ORIGIN + t, "outcome": outcome,
            "status": 200 if outcome == "ok" else None,
            "peer": lb_back_ip(node) if node else None, "local_port": 40000 + conn}


def prober_rows(k: int, broken: set[int], moved: set[int] = frozenset(), new: int = 4,
                before=lambda c: 1 + c % 3) -> list[dict]:
    """k connections answered at t = 0.1 and 0.35 before the change at 0.5; after it the
    broken ones fail and reconnect to `new`, the moved ones answer from another node."""
    rows = []
    for c in range(k):
        node = before(c)
        rows += [row(c, 0, 0.1, "ok", node), row(c, 0, 0.35, "ok", node)]
        if c in broken:
            rows += [row(c, 0, 0.6, "reset", None), row(c, 1, 0.62, "ok", new)]
        else:
            rows.append(row(c, 0, 0.85, "ok", node % 3 + 1 if c in moved else node))
    return rows


def variant(policy: str, phase: str, broken_fraction: float | None = None,
            moved: int = 0) -> tuple[dict, dict]:
    k = P.connections
    share = predicted(P, policy, phase) if broken_fraction is None else broken_fraction
    broken = set(range(round((share or 0.6) * k)))
    movers = set(range(len(broken), len(broken) + moved))
    what, _ = change(P, phase)
    docs = {"timeline": timeline(what),
            PROBER: {"ready_wall": ORIGIN, "mark_wall": ORIGIN + 0.52,
                     "settled_wall": ORIGIN + 0.9}}
    return {TABLE: prober_rows(k, broken, movers)}, docs


def raw(overrides: dict | None = None, names: list[str] | None = None) -> Raw:
    """Every variant following its model, but those in `overrides` (name -> kwargs)."""
    tables, docs = {}, {}
    for policy in P.policies:
        for phase in PHASES:
            name = variant_name(policy, phase)
            if names is not None and name not in names:
                continue
            tables[name], docs[name] = variant(policy, phase, **(overrides or {}).get(name, {}))
    return Raw.of(tables, docs)


def verdicts(data: Raw) -> dict[str, bool]:
    return {c.id: c.holds for c in EXPERIMENT.claims(P, EXPERIMENT.analyse(P, data))}


# -- the analysis ----------------------------------------------------------------------------
def test_analysis_counts_on_a_hand_made_change():
    rows = [
        row(0, 0, 0.1, "ok", 1), row(0, 0, 0.9, "ok", 1),            # survivor, stayed
        row(1, 0, 0.1, "ok", 2), row(1, 0, 0.9, "reset", None),      # broken ...
        row(1, 1, 0.95, "ok", 4),                                    # ... reconnected to lb4
        row(2, 0, 0.1, "ok", 3), row(2, 0, 0.9, "ok", 1),            # survivor that moved
        row(3, 0, 0.1, "ok", 3),                                     # never probed after
        row(4, 0, 0.2, "timeout", None),                             # failed before: not alive
        row(4, 1, 0.4, "ok", 2),
        row(5, 0, 0.1, "ok", 1), row(5, 0, 0.7, "timeout", None),    # fails before the change
        row(5, 1, 0.9, "ok", 2),                                     # really fired (0.8)
    ]
    m = analyse_change(rows, timeline("add lb4", fired=0.8, done=0.81), "add lb4", lbs=3)
    assert m["t_change_s"] == 0.8
    assert (m["connections"], m["alive"], m["broken"]) == (6, 4, 1)
    assert m["broken_fraction"] == 0.25
    assert m["survivors_moved"] == 1 and m["unprobed_after_change"] == 1
    assert m["reconnected"] == 1 and m["failed_before_change"] == 2
    assert m["share_before"] == {"lb1": 0.25, "lb2": 0.25, "lb3": 0.5}
    assert m["share_after"] == {"lb1": 2 / 3, "lb4": 1 / 3}


def test_records_are_put_on_the_variant_clock_from_the_timeline_origin():
    rows = [row(0, 0, 0.1, "ok", 1), row(0, 0, 0.9, "reset", None)]
    m = analyse_change(rows, timeline("add lb4"), "add lb4", lbs=3)
    assert m["alive"] == 1 and m["broken"] == 1
    shifted = timeline("add lb4", origin=ORIGIN + 0.5)  # the change fired at wall +1.0
    m = analyse_change(rows, shifted, "add lb4", lbs=3)
    assert m["alive"] == 0 and m["broken"] == 0 and m["failed_before_change"] == 1


def test_a_connect_that_failed_while_opening_is_not_a_failure_before_the_change():
    rows = [
        row(0, 0, -0.3, "connect_failed", None),                     # SYN lost while opening
        row(0, 1, -0.1, "ok", 1), row(0, 1, 0.6, "reset", None),     # up at t = 0, broken
        row(1, 0, -0.2, "ok", 2), row(1, 0, 0.3, "timeout", None),   # up at t = 0, then failed
        row(1, 1, 0.4, "ok", 2),
    ]
    m = analyse_change(rows, timeline("add lb4", fired=0.5, done=0.51), "add lb4", lbs=3)
    assert (m["alive"], m["broken"], m["failed_before_change"]) == (1, 1, 1)
    assert m["failed_while_opening"] == 1
    a = EXPERIMENT.analyse(P, raw(names=["hrw-add"]))
    a.variants["hrw-add"]["failed_while_opening"] = 1
    assert any("while the connections were opening" in n for n in EXPERIMENT.notes(P, a))


def test_a_timeline_that_never_started_measures_nothing():
    m = analyse_change([row(0, 0, 0.1, "ok", 1)], timeline("add lb4", origin=None), "add lb4",
                       lbs=3)
    assert m["broken_fraction"] is None and m["alive"] == 0


def test_variant_metrics_carry_what_the_plots_draw():
    a = EXPERIMENT.analyse(P, raw(names=["maglev-add", "select13-remove"]))
    m = a.variants["maglev-add"]
    assert m["predicted"] == predicted(P, "maglev", "add")
    assert m["tolerance"] == pytest.approx(3 * (0.25 * 0.75 / 400) ** 0.5, abs=0.003)
    assert set(m["share_model_after"]) == {"lb1", "lb2", "lb3", "lb4"}
    assert m["change_took_s"] == pytest.approx(0.02)
    assert m["settled_after_change_s"] == pytest.approx(0.38)
    assert a.variants["select13-remove"]["predicted"] is None
    assert a.summary["bin_s"] == 0.125
    fails = [r for r in a.series["failures"] if r["variant"] == "maglev-add"]
    assert sum(r["failed"] for r in fails) == m["broken"]
    assert [r["variant"] for r in a.series["broken"]] == ["select13-remove", "maglev-add"]


# -- the claims ------------------------------------------------------------------------------
def test_every_claim_holds_when_the_data_follows_the_model():
    got = verdicts(raw())
    assert got and all(got.values()), got
    assert not any(k.startswith("select13-") for k in got)  # measured, not predicted
    assert SURVIVORS in got and len(got) == 11


@pytest.mark.parametrize(("name", "override", "failing"), [
    ("maglev-add", {"broken_fraction": 0.5}, "maglev-add-broken"),        # half break on add
    ("modulo_n-add", {"broken_fraction": 0.25}, "modulo_n-add-broken"),   # consistent by luck
    ("hrw-remove", {"broken_fraction": 1 / 3}, "hrw-remove-broken"),      # no renumbering
    ("select15-remove", {"moved": 1}, SURVIVORS),                         # a survivor moved
    ("select13-add", {"moved": 3}, SURVIVORS),                            # even unmodelled
])
def test_each_claim_fails_when_its_failure_is_in_the_data(name, override, failing):
    got = verdicts(raw({name: override}))
    assert got[failing] is False
    assert all(v for k, v in got.items() if k != failing), got


def test_a_variant_left_out_with_only_is_a_skipped_claim():
    claims = {c.id: c for c in EXPERIMENT.claims(P, EXPERIMENT.analyse(
        P, raw(names=["maglev-add"])))}
    assert claims["maglev-add-broken"].holds
    assert claims["hrw-remove-broken"].skipped == "needs variant hrw-remove (not run)"
    assert claims[SURVIVORS].holds
    none = {c.id: c for c in EXPERIMENT.claims(P, EXPERIMENT.analyse(P, Raw.of({}, {})))}
    assert none[SURVIVORS].skipped and not none[SURVIVORS].holds


def test_no_measurement_does_not_hold():
    tables, docs = variant("maglev", "add")
    docs["timeline"] = timeline("add lb4", origin=None)
    claims = {c.id: c for c in EXPERIMENT.claims(P, EXPERIMENT.analyse(
        P, Raw.of({"maglev-add": tables}, {"maglev-add": docs})))}
    assert claims["maglev-add-broken"].measured is None
    assert not claims["maglev-add-broken"].holds


def test_notes_report_select13_and_unprobed_connections():
    a = EXPERIMENT.analyse(P, raw(names=["select13-add", "select13-remove"]))
    notes = EXPERIMENT.notes(P, a)
    assert any("select13" in n and "measured, not predicted" in n for n in notes)
    a.variants["select13-add"]["unprobed_after_change"] = 2
    assert any("never answered after it" in n for n in EXPERIMENT.notes(P, a))
