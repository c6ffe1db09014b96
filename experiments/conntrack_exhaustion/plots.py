"""Figures from the results folder alone: result.json and the series CSVs beside it."""

from __future__ import annotations

from pathlib import Path

from experiments.conntrack_exhaustion.params import CHURN, FLOODS, SMALL_TABLE
from lblab import plots
from lblab.raw import read_table

CLAIM_OF = {"churn": "littles-law-churn"}


def plot(folder: Path, result: dict) -> list[Path]:
    rows = read_table(folder / "occupancy.csv") if (folder / "occupancy.csv").exists() else []
    v, p = result["variants"], result["params"]
    claims = {c["id"]: c for c in result["claims"]}
    names = [n for n in CHURN if n in v]
    made = []
    if names:
        made.append(_occupancy(folder, rows, v, p, names))
        made.append(_steady(folder, claims, names))
    if any(f in v for f in FLOODS):
        made.append(_floods(folder, rows, v, p))
    if SMALL_TABLE in v and "skipped" not in v[SMALL_TABLE]:
        made.append(_small_table(folder, rows, v[SMALL_TABLE]))
    return made


def _series(rows: list[dict], variant: str, key: str) -> tuple[list[float], list[float]]:
    pts = [(r["t"], r[key]) for r in rows if r["variant"] == variant and r[key] is not None]
    return [t for t, _ in pts], [e for _, e in pts]


def _occupancy(folder: Path, rows: list[dict], v: dict, p: dict, names: list[str]) -> Path:
    fig, ax = plots.figure(8, 4.2)
    for name in names:
        key = "max_node_entries" if name == "spread" else "entries"
        colour = plots.colour(list(CHURN), name)
        label = "spread (busiest node)" if name == "spread" else name
        ax.plot(*_series(rows, name, key), label=label, color=colour)
        ax.axhline(v[name]["predicted_entries"], color=colour, ls="--", lw=1)
        lo, hi = v[name]["steady_window_s"]
        ax.axvspan(lo, hi, color=colour, alpha=0.04)
    ax.set_xlabel("seconds since the client started (dashed: Little's law prediction; "
                  "shaded: steady window)")
    ax.set_ylabel("conntrack entries in an L4 node")
    ax.set_title(f"Conntrack occupancy at {p['rate']:g} new connections/s")
    ax.legend(fontsize=8, ncol=2)
    return plots.save(fig, folder / "occupancy.png")


def _steady(folder: Path, claims: dict, names: list[str]) -> Path:
    fig, ax = plots.figure(7, 3.8)
    ids = [CLAIM_OF.get(k, k) for k in names]
    xs = list(range(len(names)))
    shown = [claims.get(i, {}) for i in ids]
    ax.bar([x - 0.2 for x in xs], [c.get("predicted") or 0 for c in shown], 0.4,
           label="predicted", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], [c.get("measured") or 0 for c in shown], 0.4,
           label="measured", color=[plots.colour(list(CHURN), k) for k in names])
    for x, c in zip(xs, shown, strict=True):
        ax.text(x + 0.2, c.get("measured") or 0, c.get("verdict", "no claim"), ha="center",
                va="bottom", fontsize=8)
    ax.set_xticks(xs, names)
    ax.set_ylabel("steady-state entries (spread: busiest node)")
    ax.set_title("Occupancy: Little's law prediction vs measurement")
    ax.legend()
    return plots.save(fig, folder / "steady-state.png")


def _floods(folder: Path, rows: list[dict], v: dict, p: dict) -> Path:
    fig, ax = plots.figure(7, 3.8)
    for name, colour in zip(FLOODS, ("#d1495b", "#66a182"), strict=True):
        if name in v:
            success = v[name]["legit_success"]
            ax.plot(*_series(rows, name, "entries"), color=colour,
                    label=f"{name} (legit ok {success or 0:.0%})")
    table = next((v[n]["table_max"] for n in FLOODS if n in v), None)
    if table:
        ax.axhline(table, color="black", ls="--", lw=1, label="nf_conntrack_max")
    ax.set_xlabel("seconds since the legitimate client started (the flood starts at 0)")
    ax.set_ylabel("conntrack entries in lb1")
    ax.set_title(f"{p['flood_s']:g} s of spoofed SYNs")
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "floods.png")


def _small_table(folder: Path, rows: list[dict], st: dict) -> Path:
    fig, axes = plots.figure(11, 3.8, ncols=2)
    axes[0].plot(*_series(rows, SMALL_TABLE, "entries"), color="#1b6ca8", label="entries")
    axes[0].axhline(st["table_max"], color="black", ls="--", lw=1,
                    label=f"nf_conntrack_max lowered to {st['table_max']}")
    axes[0].set_title(f"Table of ASSURED entries: {st['admitted_per_s']:.0f} of "
                      f"{st['offered_per_s']:g} conn/s admitted")
    axes[0].set_xlabel("seconds")
    axes[0].legend(fontsize=8)
    path = folder / "small-table-admissions.csv"
    adm = read_table(path) if path.exists() else []
    axes[1].plot([r["t"] for r in adm], [r["admitted"] for r in adm], color="#1b6ca8",
                 label="admitted (cumulative)")
    axes[1].plot([r["t"] for r in adm], [r["bound"] for r in adm], color="black", ls="--",
                 label="bound: min(offered, max + A(t - TIME_WAIT))")
    axes[1].set_xlabel("seconds")
    axes[1].set_ylabel("connections admitted")
    axes[1].set_title(f"success {st['success']:.3f} <= bound {st['bound_share']:.3f}")
    axes[1].legend(fontsize=8)
    return plots.save(fig, folder / "small-table.png")
