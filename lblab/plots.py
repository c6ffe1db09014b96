"""One plotting style for every experiment; variant names and colours are data.

Plot functions take a results folder and write PNGs into it: they never re-run anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PALETTE = ["#1b6ca8", "#d1495b", "#66a182", "#edae49", "#8d6a9f", "#00798c", "#3d405b",
           "#e07a5f"]
STYLE = {
    "figure.dpi": 110, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "font.size": 10,
    "axes.titlesize": 11, "legend.frameon": False, "figure.constrained_layout.use": True,
}


def colour(variants: list[str], name: str) -> str:
    return PALETTE[variants.index(name) % len(PALETTE)] if name in variants else "#777777"


def figure(width: float = 7.5, height: float = 4.0, ncols: int = 1) -> tuple[Any, Any]:
    with plt.rc_context(STYLE):
        return plt.subplots(1, ncols, figsize=(width, height))


def grid(nrows: int, ncols: int, width: float, height: float) -> tuple[Any, Any]:
    """A figure of nrows x ncols panels sharing their x axis, and each row its y axis (so
    columns compare at a glance); axes always 2-D."""
    with plt.rc_context(STYLE):
        return plt.subplots(nrows, ncols, figsize=(width, height), sharex=True, sharey="row",
                            squeeze=False)


def save(fig: Any, path: Path) -> Path:
    with plt.rc_context(STYLE):
        fig.savefig(path)
    plt.close(fig)
    return path


def draw_topology(topology: dict[str, Any], path: Path) -> Path | None:
    """Draw a lab's nodes in tiers (clients, switches, LB nodes, backends) and its links."""
    nodes: list[dict] = topology.get("nodes", [])
    links: list[list[str]] = topology.get("links", [])
    if not nodes:
        return None
    tiers = ["client", "cgnat", "switch-front", "lb", "switch-back", "backend", "other"]
    by_tier: dict[str, list[str]] = {t: [] for t in tiers}
    for n in nodes:
        by_tier.get(n.get("role", "other"), by_tier["other"]).append(n["name"])
    pos: dict[str, tuple[float, float]] = {}
    used = [t for t in tiers if by_tier[t]]
    for row, tier in enumerate(used):
        names = by_tier[tier]
        for i, name in enumerate(names):
            pos[name] = ((i + 1) / (len(names) + 1), 1 - row / max(1, len(used) - 1))
    fig, ax = figure(7.0, 1.2 + 1.0 * len(used))
    for a, b in links:
        if a in pos and b in pos:
            ax.plot([pos[a][0], pos[b][0]], [pos[a][1], pos[b][1]], color="#999999", lw=1,
                    zorder=1)
    shapes = {"switch-front": "s", "switch-back": "s", "lb": "D"}
    for row, tier in enumerate(used):
        xs = [pos[n][0] for n in by_tier[tier]]
        ys = [pos[n][1] for n in by_tier[tier]]
        ax.scatter(xs, ys, s=500, marker=shapes.get(tier, "o"), color=PALETTE[row % 8],
                   zorder=2, edgecolor="white")
        for n in by_tier[tier]:
            ax.annotate(n, pos[n], ha="center", va="center", fontsize=7, color="white",
                        zorder=3, fontweight="bold")
        ax.text(-0.02, ys[0], tier, ha="right", va="center", fontsize=8, color="#444444")
    ax.set_xlim(-0.25, 1.05)
    ax.set_ylim(-0.2, 1.2)
    ax.axis("off")
    return save(fig, path)


def topology_of(topo: Any, roles: dict[str, str]) -> dict[str, Any]:
    """A Mininet Topo as JSON nodes/links with a role per node (by name prefix)."""
    def role(name: str) -> str:
        for prefix, r in roles.items():
            if name.startswith(prefix):
                return r
        return "other"

    return {"nodes": [{"name": n, "role": role(n)} for n in topo.nodes()],
            "links": [[a, b] for a, b in topo.links()]}


def claims_over_repetitions(result: dict, path: Path) -> Path:
    """One panel per claim: each repetition's measurement (green held, red did not), the
    mean and its spread, and the prediction with its tolerance as a band."""
    claims = [c for c in result["claims"] if not c.get("skipped")]
    ncols = min(4, max(1, len(claims)))
    nrows = max(1, -(-len(claims) // ncols))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.3 * nrows),
                                 squeeze=False)
    for ax in axes.flat[len(claims):]:
        ax.axis("off")
    for ax, c in zip(axes.flat, claims, strict=False):
        runs = c.get("runs") or [c["measured"]]
        xs = [i + 1 for i, m in enumerate(runs) if m is not None]
        ys = [m for m in runs if m is not None]
        lo, hi = _claim_band(c)
        if c["comparison"] not in ("at_most", "at_least", "between"):
            ax.axhline(c["predicted"], color="black", lw=1, ls="--")
        for bound in (lo, hi):
            if bound is not None:
                ax.axhline(bound, color=PALETTE[2], lw=1.5)
        colours = [PALETTE[2] if held else PALETTE[1]
                   for held in c.get("runs_held") or [c["holds"]]]
        ax.scatter(xs, ys, c=[colours[x - 1] for x in xs], zorder=3, s=22)
        if ys:
            ax.errorbar([len(runs) + 0.6], [c["measured"]], yerr=[c.get("spread") or 0],
                        fmt="D", color="black", ms=4, capsize=3)
        # shade what holds over the visible range (a bound has one open side)
        ax.margins(y=0.25)
        bottom, top = ax.get_ylim()
        ax.axhspan(lo if lo is not None else bottom, hi if hi is not None else top,
                   color="#cfe8d5", alpha=0.6, lw=0, zorder=0)
        ax.set_ylim(bottom, top)
        ax.set_title(f"{c['id']} ({c.get('runs_holding', 0)}/{len(runs)})", fontsize=8)
        ax.set_xticks(range(1, len(runs) + 1))
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{result['experiment']}: claims over {result.get('repeat', 1)} repetitions "
                 "(green: what holds; diamond: mean ± sd)", fontsize=10)
    return save(fig, path)


def _claim_band(c: dict) -> tuple[float | None, float | None]:
    p, tol, kind = c["predicted"], c.get("tolerance_value", 0.0), c["comparison"]
    if kind == "within":
        width = abs(p) * tol if p else tol  # a zero prediction: |measured| <= tol (claims.py)
        return p - width, p + width
    if kind == "near":
        return p - tol, p + tol
    if kind == "at_most":
        return None, p + tol
    if kind == "at_least":
        return p - tol, None
    if kind == "between":
        return p, c.get("upper")
    return None, None
