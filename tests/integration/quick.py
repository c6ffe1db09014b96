"""Running one experiment in quick mode for an integration test."""

from __future__ import annotations

import json

from lblab.runner import run


def run_quick(name, out, *, sets=(), only=None, may_miss=None):
    """Run `name` in quick mode; every claim must hold, and plots be drawn.

    `may_miss` names the claims (id -> why) that this platform has been seen to miss now and
    then for a reason the claim's model leaves out. Such a claim must still be measured and
    judged (not skipped); when one misses, the run must say so with exit code 1. Every other
    claim must hold."""
    may_miss = may_miss or {}
    code = run([name], list(sets), quick=True, seed=1, out=out, repeat=1,
               lab=f"it-{name[:12]}", only=only)
    result = json.loads((out / name / "result.json").read_text())
    claims = {c["id"]: c for c in result["claims"]}
    unknown = set(may_miss) - set(claims)
    assert not unknown, f"may_miss names claims this run does not make: {sorted(unknown)}"
    for cid in may_miss:
        assert not claims[cid].get("skipped") and claims[cid]["measured"] is not None, \
            claims[cid]
    missed = [c for c in result["claims"] if not (c["holds"] or c.get("skipped"))]
    failing = [f"{c['id']}: predicted {c['predicted']}, measured {c['measured']}"
               for c in missed if c["id"] not in may_miss]
    assert not failing, failing
    assert not result["measurement_problems"], result["measurement_problems"]
    assert code == (1 if missed else 0)
    assert list((out / name).glob("*.png")), "no plot was drawn"
    return result
