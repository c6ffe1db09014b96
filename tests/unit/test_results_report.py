from __future__ import annotations

import json

import pytest

from lblab import claims as C
from lblab.errors import UsageError
from lblab.report import compare, report
from lblab.results import RunFolder, experiment_folders, load_result


def fake_result(root, name, measured):
    folder = RunFolder(root, name)
    folder.begin()
    folder.finish({
        "experiment": name, "title": "T", "summary": "S", "params": {"rate": 1},
        "environment": {"git": {"commit": "abc", "dirty": False}, "kernel": "k",
                        "datapath": "user", "sysctls_changed": [], "argv": ["lblab"],
                        "capabilities": {"tools": {"nft": "1"}}},
        "variants": {"naive": {"broken": measured, "label": "x"}},
        "schema": 2, "repeat": 1, "measurement_problems": {}, "plan": [],
        "claims": [C.within("c1", "s", 1.0, measured, 0.15).to_json(),
                   C.skipped("c2", "s2", "needs variant x (not run)").to_json()],
        "notes": [], "topology": {"nodes": [{"name": "c1", "role": "client"},
                                            {"name": "s1", "role": "switch-front"}],
                                  "links": [["c1", "s1"]]},
    })
    return folder


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


def test_compare_draws_shared_metrics(tmp_path):
    fake_result(tmp_path / "a", "exp", 1.0)
    fake_result(tmp_path / "b", "exp", 2.0)
    page = compare(tmp_path / "a", tmp_path / "b", tmp_path / "cmp")
    assert "does not hold" in page.read_text()
    assert (tmp_path / "cmp" / "exp--broken.png").exists()
    assert experiment_folders(tmp_path / "a") == [tmp_path / "a" / "exp"]
    assert json.loads((tmp_path / "a" / "exp" / "result.json").read_text())["claims"]


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
