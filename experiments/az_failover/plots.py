"""az-failover's figures, from a results folder alone: result.json (variants, analysis
summary, claims, params) and timeline.csv. Every bound or prediction drawn is read from
result.json, never recomputed here."""

from __future__ import annotations

import statistics
from pathlib import Path

from experiments.az_failover.params import BIN_S, KINDS, parse_variant, variant_name
from lblab import plots
from lblab.raw import read_table


def plot(folder: Path, result: dict) -> list[Path]:
    v, summary = result["variants"], result["analysis"]
    rows = read_table(folder / "timeline.csv") if (folder / "timeline.csv").exists() else []
    names = [k for k in KINDS if any(parse_variant(n)[0] == k for n in v)]
    utils = sorted({m["utilization"] for m in v.values()})
    predicted = {r["utilization"]: r for r in summary.get("by_utilization", [])}
    tolerance = {c["id"]: c.get("tolerance_value") for c in result["claims"]}
    return [_timeline(folder, result["params"], v, summary, predicted, rows, names, utils),
            _sweep(folder, v, summary, predicted, tolerance, names, utils),
            _cost(folder, result["params"], v, names)]


def _colour(utils: list[float], u: float) -> str:
    return plots.PALETTE[utils.index(u) % len(plots.PALETTE)]


def _timeline(folder: Path, p: dict, v: dict, summary: dict, predicted: dict,
              rows: list[dict], names: list[str], utils: list[float]) -> Path:
    panels = (("error_rate", "error rate", "surge_blocking"),
              ("p99_ms", "p99 of successes (ms)", "surge_p99_bound_ms"),
              ("survivor_utilization", "survivors' busy workers", "post_failure_utilization"))
    fig, grid = plots.grid(len(panels), len(names), 4.2 * len(names), 8.0)
    bound = summary.get("detect_bound_s", 0.0)
    for col, name in enumerate(names):
        for row, (key, label, model_key) in enumerate(panels):
            ax = grid[row][col]
            for u in utils:
                m = v.get(variant_name(name, u))
                if m is None:
                    continue
                colour = _colour(utils, u)
                pts = [(r["t"] + BIN_S / 2, r[key]) for r in rows
                       if r["variant"] == name and r["utilization"] == u and r[key] is not None]
                ax.plot([t for t, _ in pts], [y for _, y in pts], lw=1.4, label=f"u={u:.0%}",
                        color=colour)
                t_fail = m.get("fault_at_s")
                if t_fail is None:
                    continue
                ax.axvline(t_fail, color=colour, ls=":", lw=1)
                if row == 0:
                    ax.axvspan(t_fail, t_fail + bound, color="#999999", alpha=0.08)
                window = m.get("after_window_s")
                shown = name == "surge" or model_key == "post_failure_utilization"
                if window and shown and u in predicted:
                    ax.hlines(predicted[u][model_key], *window, colors=colour, ls="--", lw=1)
            if key == "p99_ms":
                ax.set_yscale("log")
            if row == 0:
                ax.set_title(f"{name}: zone {p['failed_zone']} of {p['zones']} fails",
                             fontsize=9)
                ax.legend(fontsize=7)
            if col == 0:
                ax.set_ylabel(label, fontsize=8)
            if row == len(panels) - 1:
                ax.set_xlabel("seconds since the client started")
    fig.suptitle(f"dotted: when the zone failed; shaded: the {bound:.2f} s detection bound; "
                 "dashed: predicted over the window analysed", fontsize=9)
    return plots.save(fig, folder / "timeline.png")


def _sweep(folder: Path, v: dict, summary: dict, predicted: dict, tolerance: dict,
           names: list[str], utils: list[float]) -> Path:
    fig, axes = plots.figure(11, 3.8, ncols=3)
    panels = (("error_rate_after", "error rate after the failure"),
              ("p99_ms_after", "p99 after the failure (ms)"),
              ("survivor_utilization_after", "survivors' busy workers after"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for name in names:
            pts = [(u, v[variant_name(name, u)].get(key)) for u in utils
                   if variant_name(name, u) in v]
            pts = [(x, y) for x, y in pts if y is not None]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=name,
                    color=plots.colour(list(KINDS), name))
        threshold = summary.get("threshold")
        if threshold is not None:
            ax.axvline(threshold, color="black", ls="--", lw=1,
                       label=f"(Z-1)/Z = {threshold:.0%}")
        ax.set_xlabel("utilization before the failure")
        ax.set_title(title)
    surge = [u for u in utils if variant_name("surge", u) in v and u in predicted]
    if surge:
        axes[0].errorbar(surge, [predicted[u]["surge_blocking"] for u in surge],
                         yerr=[tolerance.get(f"surge-sheds-u{u:g}") or 0 for u in surge],
                         fmt="_", ms=14, color="black", capsize=3,
                         label="surge: M/M/c/K blocking (± tolerance)")
        axes[1].scatter(surge, [predicted[u]["surge_p99_bound_ms"] for u in surge],
                        marker="v", color="black", zorder=3, label="surge: p99 bound")
    curve = summary.get("post_failure_curve", [])
    axes[2].plot([u for u, _ in curve], [y for _, y in curve], ls="--", color="black", lw=1,
                 label="min(1, u Z/(Z-1))")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=7)
    return plots.save(fig, folder / "sweep.png")


def _cost(folder: Path, p: dict, v: dict, names: list[str]) -> Path:
    fig, axes = plots.figure(10, 3.8, ncols=2)
    colours = [plots.colour(list(KINDS), n) for n in names]
    runs = {n: [m for k, m in v.items() if parse_variant(k)[0] == n] for n in names}
    gb = [sum(m["cross_zone_gb"] for m in runs[n]) for n in names]
    per_m = [statistics.fmean([m.get("cross_zone_usd_per_million_requests") or 0
                               for m in runs[n]]) for n in names]
    axes[0].bar(names, gb, color=colours)
    axes[0].set_title(f"cross-zone GB in this run ({sum(gb) * p['usd_per_gb']:.4f} USD at "
                      f"{p['usd_per_gb']:g} USD/GB)", fontsize=9)
    for x, g in enumerate(gb):
        axes[0].text(x, g, f"{g * p['usd_per_gb']:.5f} USD", ha="center", va="bottom",
                     fontsize=8)
    axes[1].bar(names, per_m, color=colours)
    axes[1].set_title("cross-zone USD per million requests (steady state)", fontsize=9)
    return plots.save(fig, folder / "cross-zone-cost.png")
