"""metrics-blind-spots' figures, drawn from the results folder alone (result.json and the
series CSVs beside it)."""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table


def _series(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.csv"
    return read_table(path) if path.exists() else []


def _shade(ax, result: dict, name: str, label: str) -> None:
    f = result["analysis"].get("faults", {}).get(name, {})
    if f.get("t1") is not None and f.get("t2") is not None:
        ax.axvspan(f["t1"], f["t2"], color="#f4d6d6", alpha=0.5, label=label)


def plot(folder: Path, result: dict) -> list[Path]:
    v = result["variants"]
    made = []
    if "l4-view" in v:
        made.append(_l4_view(folder, result))
    if "tail-regression" in v:
        made.append(_tail(folder, result))
    if "sampling" in v and _series(folder, "sampling-draws"):
        made.append(_sampling(folder, result))
    if "coordinated-omission" in v and _series(folder, "co-spectrum"):
        made.append(_spectrum(folder, result))
    return made


def _line(ax, rows: list[dict], key: str, label: str, colour: str, **kw) -> None:
    pts = [(r["t"] + 0.5, r[key]) for r in rows if r.get(key) is not None]
    ax.plot([t for t, _ in pts], [y for _, y in pts], label=label, color=colour, lw=1.6, **kw)


def _l4_view(folder: Path, result: dict) -> Path:
    p, m = result["params"], result["variants"]["l4-view"]
    rows = _series(folder, "l4-view-per-second")
    fig, ax = plots.figure(9, 4.5)
    _shade(ax, result, "l4-view", f"{p['error_fraction']:.0%} of requests answer 500")
    c = plots.PALETTE
    _line(ax, rows, "l4_connection_success", "L4 node: SYN-ACK / SYN", c[0])
    _line(ax, rows, "tcp_normal_share", "HAProxy mode tcp: connections ending normally", c[2],
          ls="--")
    _line(ax, rows, "l7_log_5xx_share", "HAProxy mode http: 5xx share (log)", c[1])
    _line(ax, rows, "client_5xx_share", "client: 5xx share (truth)", c[3], ls=":")
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel("seconds (client's clock)")
    ax.set_ylabel("share per second")
    ax.set_title(f"L4 and L7 views of one error spike: L4 success "
                 f"{m.get('l4_connection_success')}, tcp bytes/conn "
                 f"{m.get('tcp_bytes_change')} B, L7 5xx {m.get('l7_5xx_share')}",
                 fontsize=9)
    ax.legend(fontsize=8, loc="center right")
    return plots.save(fig, folder / "l4-vs-l7-errors.png")


def _tail(folder: Path, result: dict) -> Path:
    p, m = result["params"], result["variants"]["tail-regression"]
    rows = _series(folder, "tail-per-second")
    fig, ax = plots.figure(9, 4.8)
    _shade(ax, result, "tail-regression",
           f"{p['slow_fraction']:.0%} of requests +{p['delta_ms']:g} ms")
    c = plots.PALETTE
    _line(ax, rows, "p50_ms", "p50 (full HDR)", c[2])
    _line(ax, rows, "p99_ms", "p99 (full HDR)", c[1])
    _line(ax, rows, "p999_ms", "p99.9 (full HDR)", c[4])
    _line(ax, rows, "mean_ms", "mean", c[6], ls=":")
    _line(ax, rows, "rtime_ms", "HAProxy rtime (stats socket)", c[0], ls="--")
    _line(ax, rows, "prom_rtime_ms", "HAProxy response_time_average (Prometheus)", c[5],
          ls="-.")
    pts = [(r["t"] + 0.5, r["sampled_p99_ms"]) for r in rows if r.get("sampled_p99_ms")]
    ax.scatter([t for t, _ in pts], [y for _, y in pts], s=12, color=c[3],
               label=f"p99 of a {p['sample_rate']:.0%} sample", zorder=3)
    ax.axhline(p["slo_ms"], color="black", lw=1, label=f"SLO p99 < {p['slo_ms']:g} ms")
    for r in rows:
        if r.get("hidden"):
            ax.axvspan(r["t"], r["t"] + 1, ymin=0, ymax=0.03, color="black")
    ax.set_yscale("log")
    ax.set_xlabel("seconds (client's clock); black ticks: SLO violated, average says met")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Tail regression: p99 +{m.get('p99_shift_ms')} ms, mean "
                 f"+{m.get('mean_shift_ms')} ms, rtime +{m.get('rtime_shift_ms')} ms; "
                 f"{m.get('slo_hidden_seconds')} s of SLO violation hidden", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return plots.save(fig, folder / "tail-per-second.png")


def _sampling(folder: Path, result: dict) -> Path:
    p, m = result["params"], result["variants"]["sampling"]
    draws = _series(folder, "sampling-draws")
    fig, axes = plots.figure(10, 4.0, ncols=2)
    for ax, key, full, label in ((axes[0], "p99_ms", m.get("full_p99_ms"), "p99"),
                                 (axes[1], "p999_ms", m.get("full_p999_ms"), "p99.9")):
        values = [d[key] for d in draws if d.get(key) is not None]
        ax.hist(values, bins=30, color=plots.PALETTE[0], alpha=0.8,
                label=f"{len(values)} samples at {p['sample_rate']:.0%}")
        if full is not None:
            ax.axvline(full, color=plots.PALETTE[1], lw=2, label=f"full histogram: {full:g} ms")
        ax.set_xlabel(f"sampled {label} (ms)")
        ax.set_ylabel("draws")
        ax.legend(fontsize=8)
    axes[1].set_title(f"sampled p99.9 misses the tail in {m.get('sampled_p999_miss_share')} of "
                      f"draws; {m.get('bound_sample_size')} samples bound it", fontsize=9)
    axes[0].set_title(f"{p['tail_fraction']:.2%} of requests +{p['delta_ms']:g} ms",
                      fontsize=9)
    return plots.save(fig, folder / "sampling.png")


def _spectrum(folder: Path, result: dict) -> Path:
    p, m = result["params"], result["variants"]["coordinated-omission"]
    rows = _series(folder, "co-spectrum")
    fig, ax = plots.figure(9, 4.8)
    for i, view in enumerate(dict.fromkeys(r["view"] for r in rows)):
        pts = [(r["percentile"], r["latency_ms"]) for r in rows if r["view"] == view]
        xs = [1 / (1 - q / 100) if q < 100 else None for q, _ in pts]
        keep = [(x, y) for x, (_, y) in zip(xs, pts, strict=True) if x is not None]
        ax.plot([x for x, _ in keep], [y for _, y in keep], marker="o", ms=3, lw=1.6,
                label=view, color=plots.PALETTE[i])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [1, 10, 100, 1000, 10000]
    ax.set_xticks(ticks, ["0 %", "90 %", "99 %", "99.9 %", "99.99 %"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"One {p['stall_s']:g} s stall: wrk -c{p['connections']} p99 "
                 f"{m.get('closed_p99_ms')} ms, open loop p99 {m.get('open_p99_ms')} ms, "
                 f"corrected p99 {m.get('corrected_p99_ms')} ms", fontsize=9)
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "co-percentile-spectrum.png")
