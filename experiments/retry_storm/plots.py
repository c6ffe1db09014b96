"""retry-storm's figures, drawn from the results folder alone (result.json and the series
CSVs beside it): every bound and window they draw is in result.json."""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table

from .params import BUDGETS, VARIANTS


def _series(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.csv"
    return read_table(path) if path.exists() else []


def _shade_slowdown(ax, result: dict, name: str | None = None) -> None:
    faults = result["analysis"].get("faults", {})
    f = faults.get(name) if name else next(iter(faults.values()), None)
    if f and f.get("t1") is not None and f.get("t2") is not None:
        ax.axvspan(f["t1"], f["t2"], color="#f4d6d6", alpha=0.5, label="backends slow")


def plot(folder: Path, result: dict) -> list[Path]:
    names = [n for n in VARIANTS if n in result["variants"]]
    made = [_amplification(folder, result, names), _outcomes(folder, result, names)]
    detail = _breaker_budget(folder, result)
    return made + ([detail] if detail else [])


def _amplification(folder: Path, result: dict, names: list[str]) -> Path:
    p = result["params"]
    rows = _series(folder, "per-second")
    fig, ax = plots.figure(9, 4.5)
    for name in names:
        pts = [(r["t"] + 0.5, r["amplification"]) for r in rows
               if r["variant"] == name and r["amplification"] is not None]
        ax.plot([t for t, _ in pts], [y for _, y in pts], label=name,
                color=plots.colour(list(VARIANTS), name), lw=1.6)
    _shade_slowdown(ax, result)
    ax.set_xlabel("seconds (client's clock)")
    ax.set_ylabel("backend arrivals / offered requests")
    ax.set_title(f"Retry amplification: {p['rate']:g} req/s, service {p['normal_ms']:g} -> "
                 f"{p['slow_ms']:g} ms, timeout {p['timeout_s']:g} s")
    ax.legend(fontsize=8, ncol=2)
    return plots.save(fig, folder / "amplification.png")


def _outcomes(folder: Path, result: dict, names: list[str]) -> Path:
    p, v = result["params"], result["variants"]
    bounds = result["analysis"].get("drain_bound_s", {})
    fig, axes = plots.figure(11, 3.8, ncols=3)
    xs = list(range(len(names)))
    colours = [plots.colour(list(VARIANTS), n) for n in names]
    axes[0].bar(xs, [v[n]["goodput_ratio"] for n in names], color=colours)
    axes[0].set_title("goodput (ok / offered)")
    axes[1].bar(xs, [v[n]["p99_ms"] or 0 for n in names], color=colours)
    axes[1].set_title("p99 latency of successes (ms)")
    cap = p["end"] - p["t2"]
    rec = [v[n].get("recovery_s") for n in names]
    axes[2].bar(xs, [r if r is not None else cap for r in rec], color=colours)
    for x, r in zip(xs, rec, strict=True):
        if r is None:
            axes[2].text(x, cap, "never", ha="center", va="bottom", fontsize=8)
    axes[2].scatter(xs, [bounds.get(n) for n in names], marker="_", s=500, color="black",
                    zorder=3, label="drain bound")
    axes[2].set_title("recovery after t2 (s)")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(xs, names, rotation=35, fontsize=8)
    return plots.save(fig, folder / "goodput-latency-recovery.png")


def _breaker_budget(folder: Path, result: dict) -> Path | None:
    v = result["variants"]
    budgets = [n for n in BUDGETS if n in v]
    if "breaker" not in v and not budgets:
        return None
    fig, axes = plots.figure(12, 4.0, ncols=2)
    ax = axes[0]
    if "breaker" in v:
        rows = _series(folder, "breaker-arrivals")
        ax.plot([r["t"] for r in rows], [r["arrivals_per_s"] for r in rows], lw=1.2,
                color=plots.colour(list(VARIANTS), "breaker"), label="arrivals at backends")
        for i, iv in enumerate(v["breaker"].get("open_intervals", [])):
            ax.axvspan(iv["opened"], iv["closed"], color="#cccccc", alpha=0.6,
                       label="open (from the client's failures)" if i == 0 else None)
        ax.axhline(result["analysis"]["probe_rate_per_s"], color="black", ls="--", lw=1,
                   label="probe rate 1 / cooldown")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_ylabel("requests/s at the backends (0.1 s bins)")
    ax.set_title("breaker, seen from the backends")
    ax = axes[1]
    windows = _series(folder, "budget-windows")
    for name in budgets:
        rows = [r for r in windows if r["variant"] == name]
        colour = plots.colour(list(VARIANTS), name)
        ts = [r["t"] for r in rows]
        ax.plot(ts, [r["backend_retries"] for r in rows], color=colour, lw=1.0, marker=".",
                ms=3, label=f"{name}: retries at backends")
        ax.fill_between(ts, [r["allowance"] for r in rows],
                        [r["allowance"] + r["tolerance"] for r in rows], color=colour,
                        alpha=0.25, label=f"{name}: allowance (+ tolerance)")
    _shade_slowdown(ax, result)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("end of the trailing window (s)")
    ax.set_ylabel("retries in the window")
    ax.set_title(f"retry budget, windows of {result['params']['budget_window_s']:g} s")
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "breaker-budget.png")
