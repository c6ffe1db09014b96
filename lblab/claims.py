"""Claims: the quantitative statement an experiment reproduces, and its verdict.

A claim holds a prediction computed from the run's own parameters (never a constant copied
from a good run), the measured value, and how the two are compared: `within` a relative
tolerance, `near` an absolute one (for fractions, where the sampling error is known, e.g. a
binomial standard error), `at_most` or `at_least` a bound. A claim whose measurement is
missing does not hold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

Comparison = Literal["within", "near", "at_most", "at_least"]


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    predicted: float
    measured: float | None
    comparison: Comparison
    tolerance: float = 0.0
    """`within`: the allowed relative error; `near`: the allowed absolute error; bounds: an
    absolute slack, usually 0."""
    note: str = ""

    @property
    def holds(self) -> bool:
        m, p = self.measured, self.predicted
        if m is None or (isinstance(m, float) and math.isnan(m)):
            return False
        if self.comparison == "within":
            if p == 0:
                return abs(m) <= self.tolerance
            return abs(m - p) <= self.tolerance * abs(p)
        if self.comparison == "near":
            return abs(m - p) <= self.tolerance
        if self.comparison == "at_most":
            return m <= p + self.tolerance
        return m >= p - self.tolerance

    @property
    def tolerance_text(self) -> str:
        if self.comparison == "within":
            if self.predicted == 0:
                return f"|measured| <= {self.tolerance:g}"
            return f"within ±{self.tolerance:.0%}"
        if self.comparison == "near":
            return f"±{self.tolerance:.3g}"
        sign = "<=" if self.comparison == "at_most" else ">="
        slack = f" ± {self.tolerance:g}" if self.tolerance else ""
        return f"measured {sign} predicted{slack}"

    @property
    def verdict(self) -> str:
        return "holds" if self.holds else "does not hold"

    def to_json(self) -> dict:
        data = asdict(self)
        data["tolerance"] = self.tolerance_text
        data["tolerance_value"] = self.tolerance
        data["holds"] = self.holds
        return data


def within(id: str, statement: str, predicted: float, measured: float | None,
           rel: float, note: str = "") -> Claim:
    return Claim(id, statement, float(predicted), _num(measured), "within", rel, note)


def near(id: str, statement: str, predicted: float, measured: float | None,
         tol: float, note: str = "") -> Claim:
    return Claim(id, statement, float(predicted), _num(measured), "near", tol, note)


def binomial_tolerance(p: float, n: int, sigmas: float = 3.0) -> float:
    """`sigmas` standard errors of a fraction p estimated from n trials (at least 1/n)."""
    import math

    return max(sigmas * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)), 1 / max(n, 1))


def at_most(id: str, statement: str, bound: float, measured: float | None,
            slack: float = 0.0, note: str = "") -> Claim:
    return Claim(id, statement, float(bound), _num(measured), "at_most", slack, note)


def at_least(id: str, statement: str, bound: float, measured: float | None,
             slack: float = 0.0, note: str = "") -> Claim:
    return Claim(id, statement, float(bound), _num(measured), "at_least", slack, note)


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)
