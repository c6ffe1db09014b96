"""dsr's figure, drawn from the results folder alone: result.json and rates.csv.

Left: who carried the responses. Middle: the rates over the loaded window against the LB
link's rate, the offered load and the predictions (all read from result.json). Right: the
rate the client received over time, with the loaded window shaded.
"""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table

from .model import VARIANTS

MIB = 1 / 2**20


def plot(folder: Path, result: dict) -> list[Path]:
    v, p, s = result["variants"], result["params"], result["analysis"]
    names = [n for n in VARIANTS if n in v]
    if not names:
        return []
    fig, axes = plots.figure(15, 4.2, ncols=3)
    colours = {n: plots.colour(list(VARIANTS), n) for n in names}
    xs = list(range(len(names)))

    ax = axes[0]
    ax.bar([x - 0.27 for x in xs], [v[n]["bytes_to_client"] * MIB for n in names], 0.27,
           color="#bbbbbb", label="response bytes the client received")
    ax.bar(xs, [v[n]["bytes_lb_to_client_side"] * MIB for n in names], 0.27,
           color=[colours[n] for n in names], label="sent by the LB toward clients")
    ax.bar([x + 0.27 for x in xs],
           [v[n]["bytes_return_router_to_client_side"] * MIB for n in names], 0.27,
           color="#555555", label="sent by the return router rt")
    ax.set_xticks(xs, names)
    ax.set_ylabel("MiB")
    ax.set_title("Who carries the responses")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)

    ax = axes[1]
    kinds = [("lb_link_mbps", "LB -> clients (wire)", 1.0),
             ("goodput_mbps", "goodput (payload received once)", 0.65),
             ("completed_mbps", "downloads completed", 0.35)]
    width = 0.8 / len(kinds)
    for j, (key, label, alpha) in enumerate(kinds):
        ax.bar([x + (j - 1) * width for x in xs], [v[n][key] for n in names], width,
               color=[colours[n] for n in names], alpha=alpha, label=label,
               edgecolor="black", linewidth=0.4)
    ax.axhline(p["lb_mbps"], color="black", ls="--", lw=1, label="LB link rate")
    ax.axhline(s["offered_mbps"], color="#777777", ls=":", lw=1.2, label="offered")
    ax.axhline(s["nat_payload_predicted_mbps"], color="black", ls="-.", lw=0.8,
               label="link's payload rate (NAT predicted)")
    if s.get("htb_mbps") is not None:
        ax.axhline(s["htb_mbps"], color="#edae49", lw=1, label="iperf3 calibration")
    ax.set_xticks(xs, names)
    ax.set_ylabel("Mbit/s")
    lo, hi = s["window_s"]
    ax.set_title(f"Loaded window {lo:g}-{hi:g} s, {p['response_kb']} KiB downloads")
    ax.legend(fontsize=7)

    ax = axes[2]
    rates = read_table(folder / "rates.csv") if (folder / "rates.csv").exists() else []
    for n in names:
        rows = [r for r in rates if r["variant"] == n]
        ax.plot([r["t"] for r in rows], [r["to_client_mbps"] for r in rows],
                color=colours[n], lw=1.2, label=f"{n}: to the client")
    ax.axvspan(lo, hi, color="#dddddd", alpha=0.5, lw=0, label="loaded window")
    ax.axhline(p["lb_mbps"], color="black", ls="--", lw=1)
    ax.axhline(s["offered_mbps"], color="#777777", ls=":", lw=1.2)
    ax.set_xlabel("s since the client started")
    ax.set_ylabel("Mbit/s (wire)")
    ax.set_title("What the client received")
    ax.legend(fontsize=7)
    return [plots.save(fig, folder / "dsr.png")]
