"""Claims: the quantitative statement an experiment reproduces, and its verdict.

A claim holds a prediction computed from the run's own parameters (never a constant copied
from a good run), the measured value, and how the two are compared: `within` a relative
tolerance, `near` an absolute one (for fractions, where the sampling error is known, e.g. a
binomial standard error), `at_most` or `at_least` a bound, `between` a stated range (the
note's "200-500 B"). A claim whose measurement is missing does not hold. A claim that could
not be measured on this machine or in this selection of variants is `skipped` with its
reason: it is shown, never silently absent, and it neither holds nor fails.

Over repetitions (`aggregate`) claims are paired by id: a claim holds only if it held in
every repetition, and a repetition that lacks it counts as not holding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

Comparison = Literal["within", "near", "at_most", "at_least", "between", "skipped"]


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
    upper: float | None = None
    """`between`: the range is [predicted, upper]."""
    skipped: str = ""
    """Why the claim was not measured (then it neither holds nor fails)."""

    @property
    def holds(self) -> bool:
        m, p = self.measured, self.predicted
        if self.skipped or m is None or (isinstance(m, float) and math.isnan(m)):
            return False
        if self.comparison == "between":
            assert self.upper is not None
            return p - self.tolerance <= m <= self.upper + self.tolerance
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
        if self.skipped:
            return ""
        if self.comparison == "between":
            return f"in [{self.predicted:g}, {self.upper:g}]"
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
        if self.skipped:
            return f"skipped: {self.skipped}"
        return "holds" if self.holds else "does not hold"

    def to_json(self) -> dict:
        data = asdict(self)
        data["tolerance"] = self.tolerance_text
        data["tolerance_value"] = self.tolerance
        data["holds"] = self.holds
        data["verdict"] = self.verdict
        return data


def within(id: str, statement: str, predicted: float, measured: float | None,
           rel: float, note: str = "") -> Claim:
    return Claim(id, statement, float(predicted), _num(measured), "within", rel, note)


def near(id: str, statement: str, predicted: float, measured: float | None,
         tol: float, note: str = "") -> Claim:
    return Claim(id, statement, float(predicted), _num(measured), "near", tol, note)


def between(id: str, statement: str, low: float, high: float, measured: float | None,
            note: str = "") -> Claim:
    """The measurement lies in the stated range [low, high] (both ends included)."""
    if low > high:
        raise ValueError(f"claim {id}: empty range [{low}, {high}]")
    return Claim(id, statement, float(low), _num(measured), "between", 0.0, note,
                 upper=float(high))


def skipped(id: str, statement: str, why: str) -> Claim:
    """A claim this run could not measure, shown with the reason."""
    return Claim(id, statement, math.nan, None, "skipped", 0.0, skipped=why)


def missing_variants(metrics: dict, *names: str) -> str:
    """'' when every named variant was run, else the reason a claim on them is skipped."""
    absent = [n for n in names if n not in metrics]
    return f"needs variant {', '.join(absent)} (not run)" if absent else ""


def binomial_tolerance(p: float, n: int, sigmas: float = 3.0) -> float:
    """`sigmas` standard errors of a fraction p estimated from n trials (at least 1/n)."""
    return max(sigmas * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)), 1 / max(n, 1))


def at_most(id: str, statement: str, bound: float, measured: float | None,
            slack: float = 0.0, note: str = "") -> Claim:
    return Claim(id, statement, float(bound), _num(measured), "at_most", slack, note)


def at_least(id: str, statement: str, bound: float, measured: float | None,
             slack: float = 0.0, note: str = "") -> Claim:
    return Claim(id, statement, float(bound), _num(measured), "at_least", slack, note)


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


def aggregate(repetitions: list[list[dict]]) -> list[dict]:
    """Claims over repetitions (each a list of claim rows as `to_json` makes them), paired by
    id in order of first appearance. A claim holds only when it held in every repetition; a
    repetition without it counts as not holding. Skipped in every repetition: skipped."""
    import statistics

    n = len(repetitions)
    by_rep = [{c["id"]: c for c in rep} for rep in repetitions]
    ids = list(dict.fromkeys(c["id"] for rep in repetitions for c in rep))
    rows = []
    for cid in ids:
        present = [rep.get(cid) for rep in by_rep]
        first = next(c for c in present if c is not None)
        values = [c["measured"] for c in present if c and c["measured"] is not None]
        held = sum(1 for c in present if c and c["holds"])
        all_skipped = all(c is not None and c.get("skipped") for c in present)
        row = dict(first)
        row.update({
            "measured": statistics.fmean(values) if values else None,
            "runs": [c["measured"] if c else None for c in present],
            "runs_holding": held, "repetitions": n,
            "runs_held": [bool(c and c["holds"]) for c in present],
            "spread": statistics.stdev(values) if len(values) > 1 else 0.0,
            "holds": held == n and not all_skipped,
        })
        row["verdict"] = (first["verdict"] if all_skipped
                          else "holds" if row["holds"] else "does not hold")
        if not all_skipped:
            row["verdict"] += f" in {held}/{n}"
        rows.append(row)
    return rows


def exit_ok(rows: list[dict]) -> bool:
    """Every claim that was measured held (skipped ones are shown, not counted)."""
    return all(r["holds"] or r.get("skipped") for r in rows)
