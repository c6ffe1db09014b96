"""The CLI's bad-input table: one line naming the fix, exit 2, nothing created."""

from __future__ import annotations

import pytest

from lblab.cli import main

CASES = [
    (["run", "nope"], "unknown experiment 'nope'"),
    (["run", "conntrack-exhaustion", "--set", "rate=fast"], "rate expects float"),
    (["run", "conntrack-exhaustion", "--set", "bogus=1"], "unknown parameter 'bogus'"),
    (["run", "conntrack-exhaustion", "--set", "rate=5"], "rate=5.0 is below the minimum 10"),
    (["run", "conntrack-exhaustion", "--set", "short_time_wait_s=40"],
     "short_time_wait_s must be below time_wait_s"),
    (["run", "all", "--set", "zzz=1"], "--set zzz=1: no selected experiment has that"),
    (["run", "conntrack-exhaustion", "--repeat", "0"], "--repeat 0: use 1 to 50"),
    (["list", "--params", "nope"], "unknown experiment 'nope'"),
    (["report", "/nonexistent/results"], "is not a results folder"),
    (["clean", "no-such-lab"], "no lab named 'no-such-lab'"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err.replace("\n", " ")
    assert err.startswith("lblab: error:")
    assert not (tmp_path / "results").exists()


def test_list_names_every_experiment(capsys):
    import experiments

    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert all(name[:12] in text for name in experiments.names())


def test_list_params_shows_quick_values(capsys):
    assert main(["list", "--params", "conntrack-exhaustion"]) == 0
    assert "time_wait_s" in capsys.readouterr().out
