"""The CLI's bad-input table: one line naming the fix, exit 2, nothing created.

Each case runs `lblab ARGS` in an empty folder with its own LBLAB_HOME. It must exit 2 with
exactly one line on stderr that starts with `lblab: error:` and contains the expected text,
and leave no results folder, report, state file or lab folder behind.
"""

from __future__ import annotations

import json
import os

import pytest

from lblab.cli import main
from lblab.proc import start_time

EXP = "asymmetric-routing"
CASES = [
    # run: names and parameters
    (["run", "nope"], "unknown experiment 'nope'"),
    (["run", "asymmetric-routin"], "did you mean asymmetric-routing"),
    (["run"], "the following arguments are required: NAME"),
    (["run", EXP, "--set", "rate=fast"], "rate expects float, got 'fast'"),
    (["run", EXP, "--set", "bogus=1"], "unknown parameter 'bogus'"),
    (["run", EXP, "--set", "rate=5"], "rate=5.0 is below the minimum 10"),
    (["run", EXP, "--set", "routers=9"], "routers=9 is above the maximum 8"),
    (["run", EXP, "--set", "routers=2.5"], "routers expects int, got '2.5'"),
    (["run", EXP, "--set", "noequals"], "--set expects key=value, got 'noequals'"),
    (["run", EXP, "--set", "=3"], "--set expects key=value, got '=3'"),
    (["run", EXP, "--set", "asymmetric-routing.nope=1"], "unknown parameter 'nope'"),
    (["run", EXP, "--set", "dsr.rate=1"], "--set dsr.rate=1: no selected experiment has"),
    (["run", "all", "--set", "zzz=1"], "--set zzz=1: no selected experiment has that"),
    (["run", EXP, "--set", "rate=5", "--dry-run"], "rate=5.0 is below the minimum 10"),
    # run: repetitions, seed, variants
    (["run", EXP, "--repeat", "0"], "--repeat 0: use 1 to 50"),
    (["run", EXP, "--repeat", "51"], "--repeat 51: use 1 to 50"),
    (["run", EXP, "--repeat", "two"], "argument --repeat: invalid int value: 'two'"),
    (["run", EXP, "--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (["run", EXP, "--only", "nope"], "--only nope: asymmetric-routing has no such variant"),
    (["run", EXP, "--only", ","], "--only expects VARIANT[,VARIANT...]"),
    (["run", "all", "--only", "no-such-variant"], "--only no-such-variant: no selected"),
    # run: lab names and busy labs
    (["run", EXP, "--lab", "bad name!"], "lab name 'bad name!': use letters, digits"),
    (["run", EXP, "--lab", ""], "lab name '': use letters, digits"),
    (["run", EXP, "--lab", "x" * 41], "(40 at most)"),
    (["run", EXP, "--lab", "busy"], "lab 'busy' is already running"),
    (["run", EXP, "--lab", "crashed"], "lab 'crashed' crashed and left resources behind"),
    # run: where results go
    (["run", EXP, "--out", "/proc/foo"], "--out /proc/foo: not a place for results"),
    (["run", EXP, "--out", "afile"], "--out afile: exists and is not a folder"),
    (["run", EXP, "--out", "afile/sub"], "afile is not a folder"),
    # list, report, plot, compare, clean, up, and unknown commands
    (["list", "--params", "nope"], "unknown experiment 'nope'"),
    (["report", "/nonexistent/results"], "is not a results folder"),
    (["report", "afile"], "is not a results folder"),
    (["report", "empty"], "holds no experiment results"),
    (["plot", "/nonexistent/results"], "is not a results folder"),
    (["plot", "empty"], "holds no experiment results"),
    (["compare", "/nonexistent/a", "empty"], "is not a results folder"),
    (["compare", "empty", "empty"], "share no completed experiment"),
    (["clean", "no-such-lab"], "no lab named 'no-such-lab'"),
    (["up", "nope"], "unknown experiment 'nope'"),
    (["up", "--variant", "naive"], "--variant and --set need an experiment"),
    (["up", EXP, "--variant", "nope"], "--variant nope: asymmetric-routing has no such"),
    (["up", EXP, "--lab", "busy"], "lab 'busy' is already running"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


def _state_file(home, lab: str, pid: int, start: int | None) -> None:
    labs = home / "labs"
    labs.mkdir(parents=True, exist_ok=True)
    (labs / f"{lab}.json").write_text(json.dumps({
        "lab": lab, "owner_pid": pid, "owner_start": start, "bridges": [], "links": [],
        "processes": [], "sysctls": {}, "run_dir": str(home / "run" / lab)}))


def _everything(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a) or "-" for a, _ in CASES])
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("LBLAB_HOME", str(home))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "runtime"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    _state_file(home, "busy", os.getpid(), start_time(os.getpid()))
    _state_file(home, "crashed", 2 ** 22 + 7, 1)
    before = _everything(tmp_path)

    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert message in err
    assert err.startswith("lblab: error:")
    assert len(err.splitlines()) == 1, err
    assert _everything(tmp_path) == before, "bad input left something behind"


def test_list_names_every_experiment(capsys):
    from lblab import catalogue

    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert all(name[:12] in text for name in catalogue.names())


def test_list_params_shows_quick_values_and_variants(capsys):
    assert main(["list", "--params", EXP]) == 0
    text = capsys.readouterr().out
    assert "connections" in text and "independent" in text


def test_dry_run_prints_the_plan_and_creates_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", EXP, "--quick", "--dry-run", "--only", "symmetric,independent",
                 "--set", "routers=3", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "symmetric" in out and "independent" in out and "stateless" not in out
    assert "routers=3" in out and "2 repetitions" in out
    assert list(tmp_path.iterdir()) == []
