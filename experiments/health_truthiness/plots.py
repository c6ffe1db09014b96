"""health-truthiness's figures, from the results folder alone (result.json and the series
CSVs beside it): a timeline per fault (servers up and error share per check type) and the
eject-time / errors-served table as bars."""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table

from .params import CHECKS, FAULTS


def _series(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.csv"
    return read_table(path) if path.exists() else []


def plot(folder: Path, result: dict) -> list[Path]:
    faults = [f for f in FAULTS if f in result["variants"]]
    rows = _series(folder, "timeline")
    made = [_timeline(folder, result, f, [r for r in rows if r["fault"] == f]) for f in faults]
    if faults:
        made.append(_table(folder, result, faults))
    return made


def _timeline(folder: Path, result: dict, fault: str, rows: list[dict]) -> Path:
    v = result["variants"][fault]
    n = result["params"]["backends"]
    fig, axes = plots.grid(len(CHECKS), 1, 9, 1.6 * len(CHECKS))
    for ax, check in zip(axes[:, 0], CHECKS, strict=True):
        pts = [r for r in rows if r["check"] == check]
        ts = [r["t"] for r in pts]
        ax.step(ts, [r["servers_up"] if r["servers_up"] is not None else 0 for r in pts],
                where="post", color=plots.PALETTE[0], label="servers up (min in bin)")
        ax.step(ts, [r["b1_up"] if r["b1_up"] is not None else 0 for r in pts], where="post",
                color=plots.PALETTE[2], lw=1, ls="--", label="b1 up (share of samples)")
        ax.set_ylim(-0.1, n + 0.3)
        ax.set_ylabel(check)
        if v.get("fault_start_s") is not None and v.get("fault_end_s") is not None:
            ax.axvspan(v["fault_start_s"], v["fault_end_s"], color="#f4d6d6", alpha=0.5)
        err = ax.twinx()
        err.plot(ts, [r["error_share"] if r["error_share"] is not None else 0 for r in pts],
                 color=plots.PALETTE[1], lw=1.2, label="failed share of requests")
        err.set_ylim(-0.05, 1.05)
        err.grid(False)
    handles = [h for a in (axes[0, 0], ) for h in a.get_lines()]
    axes[0, 0].legend(handles=handles, fontsize=7, loc="lower left")
    axes[-1, 0].set_xlabel("seconds (client's clock); red line: failed share (right axis); "
                           "shaded: the fault")
    axes[0, 0].set_title(f"{fault}: servers up per check type and the requests that failed")
    return plots.save(fig, folder / f"timeline-{fault}.png")


def _table(folder: Path, result: dict, faults: list[str]) -> Path:
    fig, axes = plots.figure(12, 4.2, ncols=2)
    width = 0.8 / len(CHECKS)
    for j, check in enumerate(CHECKS):
        xs = [i + (j - len(CHECKS) / 2 + 0.5) * width for i in range(len(faults))]
        m = [result["variants"][f]["checks"].get(check, {}) for f in faults]
        colour = plots.colour(list(CHECKS), check)
        axes[0].bar(xs, [x.get("eject_s") or 0 for x in m], width, color=colour, label=check)
        axes[1].bar(xs, [x.get("b1_errors_before_eject") or 0 for x in m], width,
                    color=colour, label=check)
    for ax, title in zip(axes, ("time to eject b1 (s; 0: never)",
                                "b1's errors served before ejection"), strict=True):
        ax.set_xticks(range(len(faults)), faults, fontsize=8)
        ax.set_title(title)
    axes[0].legend(fontsize=8, ncol=3)
    return plots.save(fig, folder / "ejections.png")
