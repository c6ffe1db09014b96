"""ecmp-rehash's figures, from the results folder alone (result.json and failures.csv)."""

from __future__ import annotations

from pathlib import Path

from controllers.policies import POLICIES
from lblab import plots
from lblab.raw import read_table

from .model import PHASES, variant_name


def plot(folder: Path, result: dict) -> list[Path]:
    v, p = result["variants"], result["params"]
    policies = [pol for pol in p["policies"] if any(variant_name(pol, ph) in v for ph in PHASES)]
    colours = {pol: plots.colour(list(POLICIES), pol) for pol in POLICIES}
    made = [broken_fraction(folder, v, p, policies, colours)]
    adds = [pol for pol in policies if variant_name(pol, "add") in v]
    if adds:
        made.append(node_share(folder, v, p, adds, colours))
    if (folder / "failures.csv").exists():
        made.append(failures(folder, v, p, result["analysis"]["bin_s"], colours))
    return made


def _title(p: dict, phase: str) -> str:
    return f"add lb{p['lbs'] + 1}" if phase == "add" else f"remove lb{p['remove_index']}"


def broken_fraction(folder: Path, v: dict, p: dict, policies: list[str],
                    colours: dict[str, str]) -> Path:
    """Measured bars; the prediction and its tolerance as they are in result.json."""
    fig, axes = plots.figure(10, 4, ncols=2)
    for ax, phase in zip(axes, PHASES, strict=True):
        ran = [(x, pol, v[variant_name(pol, phase)]) for x, pol in enumerate(policies)
               if variant_name(pol, phase) in v]
        ax.bar([x for x, _, _ in ran], [m["broken_fraction"] or 0 for _, _, m in ran], 0.6,
               color=[colours[pol] for _, pol, _ in ran], label="measured")
        modelled = [(x, m) for x, _, m in ran if m["predicted"] is not None]
        for i, (x, m) in enumerate(modelled):
            ax.errorbar(x, m["predicted"], yerr=m["tolerance"], fmt="_", color="black",
                        markersize=18, capsize=4, label="predicted ± 3 SE" if i == 0 else None)
        ax.set_xticks(list(range(len(policies))), policies, rotation=25)
        ax.set_ylim(0, 1)
        ax.set_ylabel("fraction of connections broken")
        ax.set_title(f"{_title(p, phase)} (N={p['lbs']}, K={p['connections']})")
        _legend(ax)
    return plots.save(fig, folder / "broken-fraction.png")


def node_share(folder: Path, v: dict, p: dict, policies: list[str],
               colours: dict[str, str]) -> Path:
    """Per-node share of the long-lived connections before and after the add."""
    fig, axes = plots.figure(3.0 * len(policies), 3.4, ncols=len(policies))
    axes = axes if len(policies) > 1 else [axes]
    nodes = [f"lb{i}" for i in range(1, p["lbs"] + 2)]
    xs = list(range(len(nodes)))
    for ax, pol in zip(axes, policies, strict=True):
        m = v[variant_name(pol, "add")]
        ax.bar([x - 0.2 for x in xs], [m["share_before"].get(n, 0) for n in nodes], 0.4,
               label="before", color="#9ab")
        ax.bar([x + 0.2 for x in xs], [m["share_after"].get(n, 0) for n in nodes], 0.4,
               label="after: survivors + reconnected", color=colours[pol])
        if m["share_model_after"]:
            ax.scatter([x + 0.2 for x in xs], [m["share_model_after"].get(n, 0) for n in nodes],
                       marker="_", s=300, color="black", zorder=3,
                       label="new connections' share (model)")
        ax.set_xticks(xs, nodes)
        ax.set_title(pol)
        ax.set_ylim(0, 0.7)
    axes[0].set_ylabel("share of long-lived connections")
    fig.suptitle(f"Adding lb{p['lbs'] + 1}: only the connections that broke reconnect, so the "
                 "new node starts under-loaded", fontsize=10)
    axes[0].legend(fontsize=8)
    return plots.save(fig, folder / "node-share.png")


def failures(folder: Path, v: dict, p: dict, bin_s: float, colours: dict[str, str]) -> Path:
    """Failed requests over the variant's clock, the change's measured time dotted."""
    rows = read_table(folder / "failures.csv")
    fig, axes = plots.figure(10, 3.6, ncols=2)
    for ax, phase in zip(axes, PHASES, strict=True):
        for name, m in v.items():
            if m["phase"] != phase:
                continue
            mine = [r for r in rows if r["variant"] == name]
            ax.step([r["t"] for r in mine], [r["failed"] for r in mine], where="post",
                    color=colours[m["policy"]], label=m["policy"])
            if m["t_change_s"] is not None:
                ax.axvline(m["t_change_s"], color=colours[m["policy"]], ls=":", lw=1)
        ax.set_xlabel("s since every connection answered once (dotted: the change)")
        ax.set_ylabel(f"failed requests per {bin_s:g} s")
        ax.set_title(_title(p, phase))
        _legend(ax)
    return plots.save(fig, folder / "failures.png")


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:  # a panel of a phase left out with --only is empty
        ax.legend(fontsize=8)
