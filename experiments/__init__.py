"""The experiment catalogue: name -> module. Modules load only when asked for."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from lblab.errors import UsageError

CATALOGUE: dict[str, str] = {
    "conntrack-exhaustion": "experiments.conntrack_exhaustion",
    "ecmp-rehash": "experiments.ecmp_rehash",
    "retry-storm": "experiments.retry_storm",
    "asymmetric-routing": "experiments.asymmetric_routing",
    "dsr": "experiments.dsr",
    "cgnat-skew": "experiments.cgnat_skew",
    "az-failover": "experiments.az_failover",
}


def names() -> list[str]:
    return list(CATALOGUE)


def load(name: str) -> ModuleType:
    if name not in CATALOGUE:
        near = difflib.get_close_matches(name, CATALOGUE, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise UsageError(f"unknown experiment {name!r}{hint}; `lblab list` shows them")
    return importlib.import_module(CATALOGUE[name])
