"""The driver's pure parts: claims over repetitions, raw data round trips, the timeline's
clock, the metrics module."""

from __future__ import annotations

import threading
import time

import pytest

from lblab import claims as C
from lblab import metrics as M
from lblab.driver import VariantPlan, lab_groups, plan_variants, run_ok
from lblab.errors import UsageError
from lblab.raw import Raw, RawVariant, cell, load_raw, read_table, write_table
from lblab.timeline import Timeline, event_time


# -- claims over repetitions ----------------------------------------------------------------
def rep(*claims: C.Claim) -> list[dict]:
    return [c.to_json() for c in claims]


def test_a_claim_holds_over_repeats_only_if_it_held_every_time():
    reps = [rep(C.within("a", "s", 10, m, 0.15)) for m in (9.0, 11.0, 13.0)]
    row = C.aggregate(reps)[0]
    assert row["measured"] == pytest.approx(11.0) and row["spread"] == pytest.approx(2.0)
    assert row["runs_holding"] == 2 and row["holds"] is False
    assert row["verdict"] == "does not hold in 2/3"
    assert row["runs_held"] == [True, True, False]
    assert not C.exit_ok(C.aggregate(reps))


def test_claims_are_paired_by_id_not_position_and_a_missing_one_does_not_hold():
    first = rep(C.at_most("x", "s", 1, 0.5), C.at_most("y", "s", 1, 0.5))
    second = rep(C.at_most("y", "s", 1, 0.7))  # x is missing, y moved to position 0
    rows = {r["id"]: r for r in C.aggregate([first, second])}
    assert rows["y"]["runs"] == [0.5, 0.7] and rows["y"]["holds"]
    assert rows["x"]["runs"] == [0.5, None] and not rows["x"]["holds"]
    assert rows["x"]["verdict"] == "does not hold in 1/2"


def test_skipped_claims_are_shown_and_do_not_fail_the_run():
    skipped = C.skipped("s", "needs a writable sysctl", "nf_conntrack_max is not writable")
    assert not skipped.holds and skipped.verdict.startswith("skipped: nf_conntrack_max")
    rows = C.aggregate([rep(skipped), rep(skipped)])
    assert rows[0]["verdict"].startswith("skipped") and C.exit_ok(rows)


def test_between_is_the_stated_range():
    assert C.between("b", "s", 200, 500, 256).holds
    assert not C.between("b", "s", 200, 500, 520).holds
    assert not C.between("b", "s", 200, 500, 199).holds
    assert C.between("b", "s", 200, 500, 256).to_json()["tolerance"] == "in [200, 500]"


def test_a_measurement_problem_fails_the_run_even_if_claims_hold():
    ok = {"claims": rep(C.at_most("a", "s", 1, 0)), "measurement_problems": {}}
    assert run_ok(ok)
    assert not run_ok({**ok, "measurement_problems": {"v": ["slow: fired 2 s late"]}})


# -- planning -------------------------------------------------------------------------------
class Toy:
    name = "toy"

    def variants(self, p):
        return [VariantPlan("a", 1), VariantPlan("b", 2, lab="other"), VariantPlan("c", 3)]


def test_only_keeps_the_named_variants_and_rejects_unknown_ones():
    assert [v.name for v in plan_variants(Toy(), None, ["c", "a"])] == ["a", "c"]
    with pytest.raises(UsageError, match="--only z: toy has no such variant"):
        plan_variants(Toy(), None, ["z"])


def test_variants_sharing_a_lab_key_share_one_bring_up_in_plan_order():
    groups = lab_groups(Toy().variants(None))
    assert [(k, [v.name for v in vs]) for k, vs in groups] == [("main", ["a", "c"]),
                                                                ("other", ["b"])]


# -- raw data -------------------------------------------------------------------------------
def test_cells_come_back_typed():
    assert [cell(x) for x in ("", "True", "3", "-2", "2.5", "1e3", "b1", "10.0.0.1:80")] == \
        [None, True, 3, -2, 2.5, 1000.0, "b1", "10.0.0.1:80"]


def test_a_variant_folder_round_trips(tmp_path):
    folder = tmp_path / "raw" / "naive"
    write_table(folder / "client-records.csv", [{"id": 1, "latency_ms": 2.5, "status": None},
                                                {"id": 2, "outcome": "ok"}])
    (folder / "timeline.json").write_text('{"events": []}')
    (tmp_path / "raw" / "_lab").mkdir()
    (tmp_path / "raw" / "_lab" / "slab.json").write_text("256")
    raw = load_raw(tmp_path, ["naive"])
    assert list(raw) == ["naive"] and raw.lab == {"slab": 256}
    assert raw["naive"].table("client-records") == [
        {"id": 1, "latency_ms": 2.5, "status": None, "outcome": None},
        {"id": 2, "latency_ms": None, "status": None, "outcome": "ok"}]
    assert read_table(folder / "client-records.csv")[1]["id"] == 2
    with pytest.raises(KeyError, match="no raw table 'samples'"):
        raw["naive"].table("samples")


def test_synthetic_raw_for_tests():
    raw = Raw.of({"a": {"t": [{"x": 1}]}}, {"a": {"d": {"k": 1}}, "b": {"d": {}}})
    assert isinstance(raw["a"], RawVariant) and list(raw) == ["a", "b"]
    assert raw["a"].doc("d") == {"k": 1} and raw["b"].tables == {}


# -- the timeline ---------------------------------------------------------------------------
def announce(path, delay: float) -> float:
    """Play the client: announce the schedule's start after `delay` seconds."""
    wall = time.time() + delay

    def later():
        time.sleep(delay)
        path.write_text(repr(wall))

    threading.Thread(target=later, daemon=True).start()
    return wall


def test_faults_fire_on_the_clients_measured_clock(tmp_path):
    tl = Timeline(tmp_path / "start", start_timeout_s=5)
    fired: list[float] = []
    tl.at(0.2, "slow", lambda: fired.append(time.time()), slack_s=0.2)
    tl.start()
    origin = announce(tmp_path / "start", 0.3)  # the client took 0.3 s to boot
    time.sleep(0.8)
    doc = tl.close()
    assert doc["problems"] == []
    # never before its time on the client's clock (it would be 0.3 s early on the
    # launcher's), and recorded as fired when it did
    assert fired and 0.2 <= fired[0] - origin < 0.5
    assert 0.3 <= doc["client_boot_s"] < 0.6
    assert event_time(doc, "slow") == pytest.approx(fired[0] - origin, abs=0.01)


def test_a_late_or_failing_fault_is_a_measurement_problem(tmp_path):
    tl = Timeline(tmp_path / "start", start_timeout_s=5)
    tl.at(0.0, "hang", lambda: time.sleep(0.4), slack_s=1)
    tl.at(0.1, "late", lambda: None, slack_s=0.05)  # waits behind "hang"
    tl.at(0.5, "boom", lambda: 1 / 0)
    tl.start()
    announce(tmp_path / "start", 0.0)
    time.sleep(0.8)
    problems = tl.close()["problems"]
    assert any(p.startswith("late: fired") for p in problems), problems
    assert any(p.startswith("boom: failed: ZeroDivisionError") for p in problems), problems
    assert not any(p.startswith("hang") for p in problems)


def test_a_client_that_never_starts_is_reported(tmp_path):
    tl = Timeline(tmp_path / "start", start_timeout_s=0.2)
    tl.at(1.0, "slow", lambda: None)
    tl.start()
    time.sleep(0.4)
    doc = tl.close()
    assert doc["origin_wall"] is None
    assert any("did not start its schedule" in p for p in doc["problems"])


# -- metrics --------------------------------------------------------------------------------
def test_quantile_is_nearest_rank():
    assert M.quantile([5, 1, 4, 2, 3], 0.5) == 3
    assert M.quantile(range(1, 101), 0.99) == 99
    assert M.quantile([], 0.5) is None


def test_latency_percentiles_agree_with_the_clients_hdr_histogram():
    values = [float(i) for i in range(1, 1001)]  # 1..1000 ms
    assert M.latency_p(values, 99) == pytest.approx(990, rel=0.002)
    assert M.latency_p(values, 50) == pytest.approx(500, rel=0.002)
    assert M.latency_p([], 99) is None


def test_requests_are_the_last_attempt_of_each_id_and_windows_use_intended_time():
    records = [{"id": 1, "attempt": 0, "intended_s": 0.5, "outcome": "timeout"},
               {"id": 1, "attempt": 1, "intended_s": 0.5, "outcome": "ok"},
               {"id": 2, "attempt": 0, "intended_s": 1.5, "outcome": "ok"}]
    reqs = M.requests(records)
    assert sorted((r["id"], r["outcome"]) for r in reqs) == [(1, "ok"), (2, "ok")]
    assert [r["id"] for r in M.window(reqs, 1.0, 2.0)] == [2]
    assert [len(b) for b in M.per_bin(records, 2.0, 1.0)] == [2, 1]
    assert M.bins(2.5, 1.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.5)]


def test_counter_delta_interpolates_between_samples():
    samples = [{"t": 1.0, "n": 10}, {"t": 3.0, "n": 30}]
    assert M.counter_delta(samples, "n", 1.0, 2.0) == pytest.approx(10)
    assert M.counter_at(samples, "n", 0.5) == pytest.approx(5)
    assert M.counter_at(samples, "n", 9.0) == 30


def test_jain_index():
    assert M.jain([5, 5, 5, 5]) == pytest.approx(1.0)
    assert M.jain([10, 0, 0, 0]) == pytest.approx(0.25)


def test_counter_before_the_clock_starts_is_zero():
    samples = [{"t": -1.0, "n": 3}, {"t": 1.0, "n": 10}]
    assert M.counter_at(samples, "n", -0.5) == 0.0
    assert M.counter_delta(samples, "n", -0.5, 1.0) == pytest.approx(10)


def test_a_workload_other_than_the_client_can_announce_t0(tmp_path):
    tl = Timeline(tmp_path / "start", start_timeout_s=5)
    fired: list[float] = []
    tl.at(0.0, "change", lambda: fired.append(time.time()))
    (tmp_path / "start").write_text("17")  # a partly written file is retried, not fatal
    tl.start()  # start() clears a stale start file first
    origin = time.time()
    tl.announce(origin)
    time.sleep(0.3)
    doc = tl.close()
    assert doc["origin_wall"] == origin and fired and fired[0] >= origin
    assert doc["problems"] == []
