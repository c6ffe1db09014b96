"""The experiment catalogue, declared by the experiments' package, not by the core.

Each experiment is an entry point of the group `lblab.experiments` (pyproject.toml):
`NAME = "module:EXPERIMENT"`. The core lists and loads them by name and never imports an
experiment module itself, so another package can add experiments the same way.
"""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any

from lblab.errors import LabError, UsageError

GROUP = "lblab.experiments"
LABS = "lblab.labs"
"""Labs that are not an experiment's (the smoke lab behind a bare `lblab up`)."""


def _points() -> dict[str, Any]:
    points = {ep.name: ep for ep in entry_points(group=GROUP)}
    if not points:
        raise LabError("no experiments are registered: lblab is not installed in this "
                       "environment (run scripts/provision.sh)")
    return points


def names() -> list[str]:
    return list(_points())


def load(name: str) -> Any:
    points = _points()
    if name not in points:
        near = difflib.get_close_matches(name, points, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise UsageError(f"unknown experiment {name!r}{hint}; `lblab list` shows them")
    return points[name].load()


def load_lab(name: str) -> Any:
    """A lab factory: called with a lab name, a context manager yielding an object with
    `.lab` (lblab.lab.Lab) and `.banner()` (lines telling the user what is up)."""
    points = {ep.name: ep for ep in entry_points(group=LABS)}
    if name not in points:
        raise LabError(f"no lab {name!r} is registered: lblab is not installed in this "
                       "environment (run scripts/provision.sh)")
    return points[name].load()
