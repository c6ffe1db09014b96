"""What an experiment is, and the context a run hands it.

An experiment module defines NAME, TITLE, SUMMARY, a `Params` dataclass (lblab.params), a
`quick()` variant of it, the capabilities it NEEDS, a `run(ctx)` that builds its labs,
measures each variant and returns an `Outcome` (metrics per variant and claims), and a
`plot(folder)` that redraws its figures from the results folder alone
(tests/unit/test_experiment_params.py checks that every module has them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lblab.claims import Claim
from lblab.results import RunFolder


@dataclass
class Outcome:
    variants: dict[str, dict[str, Any]]
    claims: list[Claim]
    notes: list[str] = field(default_factory=list)
    topology: dict[str, Any] = field(default_factory=dict)
    sysctls_changed: list[dict[str, str]] = field(default_factory=list)


@dataclass
class RunContext:
    params: Any
    folder: RunFolder
    caps: Any
    seed: int
    lab_name: str
    progress: Callable[[str], None] = lambda _msg: None
    started: float = field(default_factory=time.monotonic)

    def step(self, message: str) -> None:
        self.progress(message)
