"""The suite's time budget: each experiment's wall time and where it goes, from results.

    .venv/bin/python bench/suite_time.py results/ [results-quick/]

Reads the `timing` every result.json carries (lblab.driver.WallTime: bring-up, setup,
measurement per variant, teardown, analysis) and prints one markdown table per folder, with
each experiment's share of the suite's budget (default: 35 min, quick: 8 min, split evenly
over the experiments present) and, for an experiment over its share, the phase its time
goes to. Nothing is run: the figures are those of the runs that wrote the folders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lblab.results import experiment_folders, load_result  # noqa: E402

BUDGET_S = {"default": 35 * 60, "quick": 8 * 60}


def rows_of(root: Path) -> list[dict]:
    rows = []
    for folder in experiment_folders(root):
        result = load_result(folder)
        if result is None:
            continue
        t = result.get("timing") or {}
        measured = sum((t.get("measure_s") or {}).values())
        rows.append({"experiment": result["experiment"],
                     "quick": "--quick" in (result.get("environment") or {}).get("argv", []),
                     "total_s": result.get("duration_s", 0.0),
                     "bring_up_s": t.get("bring_up_s"), "setup_s": t.get("setup_s"),
                     "measure_s": measured if t else None,
                     "variants": len(t.get("measure_s") or {}),
                     "teardown_s": t.get("teardown_s"), "conclude_s": t.get("conclude_s")})
    return rows


def biggest_phase(row: dict) -> str:
    phases = {k: row[k] or 0.0 for k in ("bring_up_s", "setup_s", "measure_s", "teardown_s",
                                        "conclude_s")}
    name = max(phases, key=phases.get)
    return f"{name.removesuffix('_s').replace('_', '-')} {phases[name]:.0f} s"


def table(rows: list[dict], budget_s: float) -> str:
    share = budget_s / max(1, len(rows))
    head = ("| experiment | total (s) | bring-up | setup | measurement (variants) | teardown |"
            " analysis | share (s) | over: where it goes |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---|")
    lines = [head]

    def cell(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0f}"

    for r in rows:
        over = biggest_phase(r) if r["total_s"] > share else ""
        lines.append(f"| {r['experiment']} | {r['total_s']:.0f} | {cell(r['bring_up_s'])} | "
                     f"{cell(r['setup_s'])} | {cell(r['measure_s'])} ({r['variants']}) | "
                     f"{cell(r['teardown_s'])} | {cell(r['conclude_s'])} | {share:.0f} | "
                     f"{over} |")
    total = sum(r["total_s"] for r in rows)
    lines.append(f"| **all** | **{total:.0f}** | | | | | | {budget_s:.0f} | "
                 f"{'over budget' if total > budget_s else 'within budget'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="results folders (lblab run --out)")
    args = ap.parse_args(argv)
    for root in args.folders:
        rows = rows_of(root)
        if not rows:
            print(f"suite_time: {root} has no complete result.json", file=sys.stderr)
            return 2
        mode = "quick" if all(r["quick"] for r in rows) else "default"
        print(f"\n{root} ({mode}, {len(rows)} experiments)\n")
        print(table(rows, BUDGET_S[mode]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
