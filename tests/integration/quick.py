"""Running one experiment in quick mode for an integration test."""

from __future__ import annotations

import json

from lblab.runner import run


def run_quick(name, out, *, sets=(), only=None):
    """Run `name` in quick mode; every claim must hold, exit 0, and plots be drawn."""
    code = run([name], list(sets), quick=True, seed=1, out=out, repeat=1,
               lab=f"it-{name[:12]}", only=only)
    result = json.loads((out / name / "result.json").read_text())
    failing = [f"{c['id']}: predicted {c['predicted']}, measured {c['measured']}"
               for c in result["claims"] if not (c["holds"] or c.get("skipped"))]
    assert not failing, failing
    assert not result["measurement_problems"], result["measurement_problems"]
    assert code == 0
    assert list((out / name).glob("*.png")), "no plot was drawn"
    return result
