"""The lab's state file under concurrent writers (experiments spawn from several threads)."""

from __future__ import annotations

import json
import os
import threading

from lblab import owned
from lblab.proc import ProcRecord


def test_concurrent_records_are_all_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "run"))
    state = owned.claim("race")
    me = ProcRecord.of(os.getpid(), "me")
    errors = []

    def add(i: int) -> None:
        try:
            for j in range(25):
                state.add_process(ProcRecord(me.pid, me.start, f"p{i}-{j}", False))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    saved = json.loads(state.path.read_text())
    assert len(saved["processes"]) == 100
    state.path.unlink()


def test_a_second_claim_of_a_live_lab_is_refused(tmp_path, monkeypatch):
    import pytest

    from lblab.errors import UsageError

    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "run"))
    state = owned.claim("twice")
    with pytest.raises(UsageError, match="lab 'twice' is already running"):
        owned.claim("twice")
    state.path.unlink()
