from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from lblab import claims as C
from lblab import plots
from lblab.errors import UsageError
from lblab.report import compare, report, wall_time_text
from lblab.results import RunFolder, experiment_folders, load_result


def fake_result(root, name, measured, params=None, plan=None, variants=None, claims=None,
                problems=None):
    folder = RunFolder(root, name)
    folder.begin()
    folder.finish({
        "experiment": name, "title": "T", "summary": "S", "params": params or {"rate": 1},
        "seed": 1,
        "environment": {"git": {"commit": "abc", "dirty": False}, "kernel": "k",
                        "datapath": "user", "sysctls_changed": [], "argv": ["lblab"],
                        "capabilities": {"tools": {"nft": "1"}}},
        "variants": variants or {"naive": {"broken": measured, "label": "x"}},
        "schema": 2, "repeat": 1, "measurement_problems": problems or {}, "plan": plan or [],
        "claims": claims or [C.within("c1", "s", 1.0, measured, 0.15).to_json(),
                             C.skipped("c2", "s2", "needs variant x (not run)").to_json()],
        "notes": [], "topology": {"nodes": [{"name": "c1", "role": "client"},
                                            {"name": "s1", "role": "switch-front"}],
                                  "links": [["c1", "s1"]]},
    })
    return folder


def draw_png(path, colour=0):
    fig, ax = plots.figure(3.0, 2.0)
    ax.plot([0, 1, 2], [1, 3, 2], color=plots.PALETTE[colour])
    return plots.save(fig, path)


def test_an_interrupted_run_never_looks_complete(tmp_path):
    folder = fake_result(tmp_path, "exp", 1.0)
    assert load_result(folder.dir) is not None
    folder.begin()
    assert load_result(folder.dir) is None
    assert not (folder.dir / "result.json").exists()


def test_report_lists_claims_and_marks_incomplete_runs(tmp_path):
    fake_result(tmp_path, "good", 1.05)
    RunFolder(tmp_path, "broken").begin()
    page = report(tmp_path).read_text()
    assert "c1" in page and "holds" in page
    assert "incomplete" in page
    assert (tmp_path / "good" / "topology.png").exists()


def test_report_of_a_missing_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="is not a results folder"):
        report(tmp_path / "nope")


def test_compare_shows_each_runs_plots_side_by_side_in_a_self_contained_page(tmp_path):
    fa = fake_result(tmp_path / "a", "exp", 1.0)
    fb = fake_result(tmp_path / "b", "exp", 2.0, params={"rate": 2})
    draw_png(fa.dir / "occupancy.png")
    draw_png(fb.dir / "occupancy.png")
    draw_png(fb.dir / "only-b.png")
    page = compare(tmp_path / "a", tmp_path / "b", tmp_path / "cmp")
    html = page.read_text()
    # the experiment's own plots, copied beside the page and referenced relative to it
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert "a/exp/occupancy.png" in srcs and "b/exp/occupancy.png" in srcs
    assert "b/exp/only-b.png" in srcs and "not in A" in html
    for src in srcs:
        assert not src.startswith("/") and (page.parent / src).is_file()
    shutil.rmtree(tmp_path / "a")
    shutil.rmtree(tmp_path / "b")
    assert all((page.parent / src).is_file() for src in srcs)
    # claims with the delta and the verdict change; the differing parameter highlighted
    row = re.search(r'<tr class="changed"><td><code>c1</code>.*?</tr>', html, re.S)
    assert row and "+1" in row.group(0) and "holds → does not hold" in row.group(0)
    assert re.search(r'<tr class="differs"><th>rate</th><td>1</td><td>2</td>', html)
    assert not re.search(r'<tr class="differs"><th>seed</th>', html)
    assert not list((tmp_path / "cmp").glob("*--*.png"))


def test_compare_default_out_is_compare_a_vs_b_in_the_current_folder(tmp_path, monkeypatch):
    from lblab.cli import main

    fake_result(tmp_path / "r1", "exp", 1.0)
    fake_result(tmp_path / "r2", "exp", 1.0)
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "r1", "r2"]) == 0
    assert (tmp_path / "compare-r1-vs-r2" / "compare.html").exists()
    assert experiment_folders(tmp_path / "r1") == [tmp_path / "r1" / "exp"]
    assert json.loads((tmp_path / "r1" / "exp" / "result.json").read_text())["claims"]


def test_overview_has_a_row_per_experiment_with_variant_headlines(tmp_path):
    fake_result(tmp_path, "alpha", 1.05,
                plan=[{"name": "naive", "seconds": 1, "lab": "main", "setting": None},
                      {"name": "fixed", "seconds": 1, "lab": "main",
                       "setting": {"rate": 3}},
                      {"name": "other", "seconds": 1, "lab": "main", "setting": None},
                      {"name": "absent", "seconds": 1, "lab": "main", "setting": None}],
                variants={"naive": {"broken": 1.05}, "other": {"t_fault": 5.0, "broken": 0.25},
                          "fixed": {"rate": 3, "predicted_x": 9.0, "p99_ms": 12.5,
                                    "ok": True}},
                claims=[C.within("naive-breaks", "s", 1.0, 1.05, 0.15).to_json()])
    fake_result(tmp_path, "beta", 0.5)
    page = report(tmp_path).read_text()
    overview = page[page.index('id="overview"'):page.index('<h2 id="alpha"')]
    assert '<a href="#alpha">alpha</a>' in overview and '<a href="#beta">beta</a>' in overview
    cells = re.findall(r'<span class="cell (\w+)"[^>]*>([^<]+) <b>([^<]*)</b>'
                       r'(?: <small>([^<]*)</small>)?', overview)
    assert ("holds", "naive", "1.05", "naive-breaks") in cells  # the claim naming it
    assert ("metric", "fixed", "12.5", "p99_ms") in cells  # not a setting nor a prediction
    assert ("metric", "other", "0.25", "broken") in cells  # the metric naive's claim measured
    assert ("skipped", "absent", "not run", "") in cells
    assert ("metric", "naive", "0.5", "broken") in cells  # beta: no claim names it
    # one environment line: kernel, datapath, tool versions
    assert "kernel k · OVS datapath user · nft 1" in page


def test_what_did_not_hold_is_listed_first(tmp_path):
    fake_result(tmp_path, "good", 1.0)
    fake_result(tmp_path, "worse", 2.0)
    RunFolder(tmp_path, "broken").begin()
    page = report(tmp_path).read_text()
    box = page[page.index('id="did-not-hold"'):page.index('id="overview"')]
    assert page.index('id="did-not-hold"') < page.index('<h2 id="good"')
    row = re.search(r'<tr><td><a href="#worse">worse</a></td>.*?</tr>', box, re.S)
    assert row, box
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    assert 'href="#worse--c1"' in cells[1] and cells[2:5] == ["1", "2", "within ±15%"]
    assert "good" not in box and "broken" in box and "incomplete" in box
    assert 'id="worse--c1"' in page  # the link's target: the claim's row in its section


def test_when_everything_holds_the_box_says_so(tmp_path):
    fake_result(tmp_path, "good", 1.0)
    page = report(tmp_path).read_text()
    assert "Every claim held" in page and "Did not hold" not in page


def test_junit_has_one_case_per_claim(tmp_path):
    fake_result(tmp_path, "good", 1.0)
    fake_result(tmp_path, "worse", 2.0, claims=[
        C.within("c1", "s", 1.0, 2.0, 0.15).to_json(),
        C.between("range", "r", 200, 500, 600).to_json(),
        C.skipped("c2", "s2", "needs variant x (not run)").to_json()],
        problems={"naive": ["the client never started"]})
    RunFolder(tmp_path, "broken").begin()
    junit = tmp_path / "out" / "claims.xml"
    report(tmp_path, junit=junit)
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"),
            root.get("skipped")) == ("7", "3", "1", "2")
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert set(cases) == {("good", "c1"), ("good", "c2"), ("worse", "c1"), ("worse", "range"),
                          ("worse", "c2"), ("worse", "measurement:naive"),
                          ("broken", "result")}
    assert len(list(cases[("good", "c1")])) == 0  # holds: no child element
    assert cases[("good", "c2")].find("skipped").get("message") == "needs variant x (not run)"
    assert cases[("worse", "c1")].find("failure").get("message") == (
        "predicted 1, measured 2, tolerance within ±15%")
    assert cases[("worse", "range")].find("failure").get("message") == (
        "predicted 200-500, measured 600, tolerance in [200, 500]")
    assert "never started" in cases[("worse", "measurement:naive")].find("failure").get(
        "message")
    assert cases[("broken", "result")].find("error") is not None
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["worse"].get("failures") == "3" and suites["good"].get("skipped") == "1"


def test_report_cli_writes_junit(tmp_path, monkeypatch):
    from lblab.cli import main

    fake_result(tmp_path / "r", "exp", 1.0)
    monkeypatch.setattr("lblab.driver.redraw", lambda folder, load: [])
    assert main(["report", str(tmp_path / "r"), "--junit", str(tmp_path / "j.xml")]) == 0
    assert ET.parse(tmp_path / "j.xml").getroot().get("tests") == "2"
    assert main(["report", str(tmp_path / "r"), "--junit", str(tmp_path)]) == 2


def test_a_rerun_starts_from_an_empty_folder(tmp_path):
    folder = fake_result(tmp_path, "exp", 1.0)
    (folder.dir / "logs").mkdir()
    (folder.dir / "logs" / "old.log").write_text("old")
    folder.begin()
    assert not (folder.dir / "logs").exists()


def test_a_foreign_folder_is_never_cleared(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="is not an lblab results folder"):
        RunFolder(tmp_path, "exp").begin()
    assert (tmp_path / "exp" / "thesis.tex").exists()


def test_the_report_says_where_a_runs_wall_time_went(tmp_path):
    timing = {"total_s": 100.0, "bring_up_s": 12.0, "setup_s": 8.0, "prepare_s": 0.0,
              "measure_s": {"a": 30.0, "b": 40.0}, "teardown_s": 6.0, "conclude_s": 2.0}
    text = wall_time_text({"duration_s": 100.0, "timing": timing})
    assert text.startswith("100 s") and "measurement 70 s over 2 variants" in text
    assert "bring-up 12 s" in text and "teardown 6 s" in text
    assert wall_time_text({"duration_s": 42.0}) == "42 s"
    assert wall_time_text({}) == "n/a"
    folder = fake_result(tmp_path, "exp", 1.0)
    result = json.loads((folder.dir / "result.json").read_text())
    result.update(duration_s=100.0, timing=timing)
    RunFolder.finish_at(folder.dir, result)
    assert "measurement 70 s over 2 variants" in report(tmp_path).read_text()
