"""cgnat-skew's figures, drawn from the results folder alone (result.json and sweep.csv)."""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table

from .params import POLICIES


def plot(folder: Path, result: dict) -> list[Path]:
    v, p, summary = result["variants"], result["params"], result["analysis"]
    names = [k for k in POLICIES if k in v]
    made = []
    if names:
        made.append(_shares(folder, v, p, summary, names))
        made.append(_stickiness(folder, v, names))
    sweep = folder / "sweep.csv"
    if sweep.exists():
        made.append(_sweep(folder, read_table(sweep)))
    return made


def _shares(folder: Path, v: dict, p: dict, summary: dict, names: list[str]) -> Path:
    fig, (ax, bx) = plots.figure(13, 4.4, ncols=2)
    xs = range(len(names))
    bottom = [0.0] * len(names)
    ranked = {n: sorted(v[n]["shares"].values(), reverse=True) for n in names}
    for i in range(max(len(r) for r in ranked.values())):
        vals = [ranked[n][i] if i < len(ranked[n]) else 0 for n in names]
        ax.bar(xs, vals, bottom=bottom, color=plots.PALETTE[i % 8],
               label="busiest" if i == 0 else f"#{i + 1}", edgecolor="white")
        bottom = [x + y for x, y in zip(bottom, vals, strict=True)]
    ax.axhline(summary["biggest_cgnat_share"], color="black", ls="--", lw=1,
               label=f"biggest CGNAT {summary['biggest_cgnat_share']:.0%}")
    ax.set_xticks(list(xs), names, rotation=30, fontsize=8, ha="right")
    ax.set_ylabel("share of requests, busiest unit first")
    ax.set_title(f"{p['users']} users, CGNAT shares {p['cgnat_shares']}: {p['backends']} "
                 f"backends, {p['anycast']} anycast nodes", fontsize=9)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    spread = [n for n in names if "predicted_max_over_mean" in v[n]]
    bxs = range(len(spread))
    bx.bar(bxs, [v[n]["max_over_mean"] or 0 for n in spread], color=plots.PALETTE[0],
           label="measured")
    bx.scatter(bxs, [v[n]["predicted_max_over_mean"] for n in spread], marker="_", s=500,
               color="black", zorder=3, label=f"predicted bound (p{summary['quantile'] * 100:g} "
                                              "or exact)")
    bx.axhline(1.0, color="grey", lw=0.8)
    bx.set_xticks(list(bxs), spread, rotation=30, fontsize=8, ha="right")
    bx.set_ylim(0.9, max([1.3] + [v[n]["predicted_max_over_mean"] * 1.05 for n in spread]))
    bx.set_ylabel("max / mean requests per unit")
    bx.set_title("Spreading policies against their mechanism's bound", fontsize=9)
    bx.legend(fontsize=7)
    return plots.save(fig, folder / "shares.png")


def _stickiness(folder: Path, v: dict, names: list[str]) -> Path:
    fig, ax = plots.figure(8.5, 4.5)
    markers = "osD^vP*Xh"
    for i, n in enumerate(names):
        if v[n]["stickiness"] is None or v[n]["jain"] is None:
            continue
        ax.scatter(v[n]["stickiness"], v[n]["jain"], s=90, color=plots.PALETTE[i % 8],
                   marker=markers[i % len(markers)], label=n, alpha=0.85)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xlabel("stickiness (share of a user's requests on its main unit)")
    ax.set_ylabel("Jain's fairness index over units")
    ax.set_title("The stickiness / fairness trade-off")
    return plots.save(fig, folder / "stickiness-fairness.png")


def _sweep(folder: Path, rows: list[dict]) -> Path:
    fig, ax = plots.figure(7.5, 4.2)
    for i, policy in enumerate(dict.fromkeys(r["policy"] for r in rows)):
        pts = sorted((r["cgnat_share"], r["jain"]) for r in rows
                     if r["policy"] == policy and r["jain"] is not None)
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=policy,
                color=plots.PALETTE[i % 8])
    ax.set_xlabel("share of users behind the biggest CGNAT")
    ax.set_ylabel("Jain's fairness index over backends")
    ax.set_ylim(0, 1.05)
    ax.set_title("Fairness as one CGNAT grows")
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "fairness-sweep.png")
