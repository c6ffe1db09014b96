"""`--set` parsing and the bad-input table: each case its own test."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lblab.errors import UsageError
from lblab.params import apply_overrides, param


@dataclass(frozen=True)
class P:
    rate: float = param(100.0, "rate", min=1, max=1000)
    n: int = param(3, "nodes", min=1, max=10)
    mode: str = param("nat", "mode", choices=("nat", "dsr"))
    fast: bool = param(False, "fast")
    sizes: tuple[int, ...] = param((1, 2), "sizes", min=1)

    def validate(self):
        return "n must be odd in dsr mode" if self.mode == "dsr" and self.n % 2 == 0 else None


def test_overrides_apply_with_types():
    p = apply_overrides("x", P(), ["rate=2.5", "n=5", "mode=dsr", "fast=yes", "sizes=4,5,6"])
    assert (p.rate, p.n, p.mode, p.fast, p.sizes) == (2.5, 5, "dsr", True, (4, 5, 6))


def test_no_overrides_keep_defaults():
    assert apply_overrides("x", P(), []) == P()


BAD = [
    ("nope=1", "x: unknown parameter 'nope'"),
    ("rat=1", "did you mean rate?"),
    ("rate", "--set expects key=value, got 'rate'"),
    ("=3", "--set expects key=value"),
    ("rate=fast", "x: rate expects float, got 'fast'"),
    ("n=2.5", "x: n expects int, got '2.5'"),
    ("n=0", "x: n=0 is below the minimum 1"),
    ("n=11", "x: n=11 is above the maximum 10"),
    ("mode=ipvs", "x: mode=ipvs is not one of: nat, dsr"),
    ("fast=maybe", "x: fast expects bool"),
    ("sizes=1,0", "x: sizes=0 is below the minimum 1"),
    ("mode=dsr", "x: n must be odd in dsr mode"),
]


@pytest.mark.parametrize(("assignment", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_clear_line(assignment, message):
    extra = ["n=2"] if assignment == "mode=dsr" else []
    with pytest.raises(UsageError) as err:
        apply_overrides("x", P(), [*extra, assignment])
    assert message in str(err.value)
    assert "\n" not in str(err.value)
