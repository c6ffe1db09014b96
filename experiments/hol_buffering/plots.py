"""hol-and-buffering's figures, from the results folder alone (result.json and the series
CSVs beside it); every prediction and bound drawn is read from result.json."""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table

from .params import BUFFER_VARIANTS, LOSS_VARIANTS, SLOW_VARIANTS, VARIANTS

MIB = 1 << 20


def _series(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.csv"
    return read_table(path) if path.exists() else []


def plot(folder: Path, result: dict) -> list[Path]:
    v = result["variants"]
    made = []
    if any(n.partition("@")[0] in LOSS_VARIANTS for n in v):
        made += [_completion(folder, result), _stall_curve(folder, result)]
    if any(n in v for n in SLOW_VARIANTS):
        made.append(_slow(folder, result))
    if any(n in v for n in BUFFER_VARIANTS):
        made.append(_memory(folder, result))
    return made


def _completion(folder: Path, result: dict) -> Path:
    s, p = result["analysis"], result["params"]
    rows = _series(folder, "streams")
    fig, ax = plots.figure(8, 4.5)
    for name in LOSS_VARIANTS:
        times = sorted(r["completion_ms"] for r in rows if r["variant"] == name)
        if not times:
            continue
        ys = [(i + 1) / len(times) for i in range(len(times))]
        ax.step(times, ys, where="post", label=f"{name} ({len(times)} streams)",
                color=plots.colour(list(VARIANTS), name), lw=1.6)
    ax.axvline(s["rto_min_ms"], color="black", ls=":", lw=1, label="minimum RTO")
    ax.axvline(s["stall_ms"], color="#999999", ls="--", lw=1, label="stall threshold")
    for key, name in (("predicted_stall_h2", "loss-h2"), ("predicted_stall_h1", "loss-h1")):
        ax.axhline(1 - s[key], color=plots.colour(list(VARIANTS), name), ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("per-stream completion time (ms, log)")
    ax.set_ylabel("share of streams at or below")
    ax.set_title(f"S = {p['streams']} streams of {p['response_bytes']} B, loss "
                 f"{p['loss_pct']:g} %: one h2 connection vs S HTTP/1.1 connections\n"
                 "(dashed: 1 - predicted stalled share)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return plots.save(fig, folder / "completion-times.png")


def _stall_curve(folder: Path, result: dict) -> Path:
    v = result["variants"]
    curve = _series(folder, "stall_curve")
    claims = {c["id"]: c for c in result["claims"]}
    fig, ax = plots.figure(7, 4.2)
    for mode in ("h2", "h1"):
        colour = plots.colour(list(VARIANTS), f"loss-{mode}")
        ax.plot([r["loss_pct"] for r in curve], [r[mode] for r in curve], color=colour,
                lw=1.4, label=f"{mode} predicted")
        first = True
        for name, m in v.items():
            if m.get("mode") != mode:
                continue
            suffix = name.partition("@")[2]
            claim = claims.get(f"{mode}-stalled-share" + (f"@{suffix}" if suffix else ""), {})
            if claim.get("predicted") is not None:
                ax.errorbar([m["loss_pct"]], [claim["predicted"]],
                            yerr=[claim.get("tolerance_value") or 0], fmt="none",
                            color=colour, capsize=5, alpha=0.6,
                            label=f"{mode}: predicted ± tolerance" if first else None)
            ax.plot([m["loss_pct"]], [m["stalled_share"]], "o", color=colour,
                    label=f"{mode} measured" if first else None)
            first = False
    ax.set_xscale("log")
    ax.set_xlabel("loss p (%)")
    ax.set_ylabel("share of streams stalled")
    ax.set_title("Stalled share vs loss: any lost segment before a stream's last byte")
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "stall-vs-loss.png")


def _slow(folder: Path, result: dict) -> Path:
    v, p = result["variants"], result["params"]
    rows = _series(folder, "slow")
    fig, ax = plots.figure(8, 4.5)
    for name in SLOW_VARIANTS:
        if name not in v:
            continue
        colour = plots.colour(list(VARIANTS), name)
        pts = [(r["sent_s"], r["completion_ms"]) for r in rows
               if r["variant"] == name and r["kind"] == "sibling"]
        ax.plot([t for t, _ in pts], [y for _, y in pts], "o-", ms=4, color=colour,
                label=f"{name}: siblings ({v[name]['blocked']}/{v[name]['siblings']} wait)")
        ax.axvline(v[name]["pause_end_s"], color=colour, ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("sibling sent at (s after the slow upload started; dotted: upstream resumes)")
    ax.set_ylabel("sibling completion time (ms, log)")
    ax.set_title(f"A {p['slow_upload_mib']:g} MiB upload whose upstream pauses "
                 f"{p['slow_pause_ms']:g} ms:\nsiblings on the same h2 connection vs on their "
                 "own HTTP/1.1 connections", fontsize=9)
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "slow-stream.png")


def _memory(folder: Path, result: dict) -> Path:
    v, s = result["variants"], result["analysis"]
    rows = _series(folder, "memory")
    fig, ax = plots.figure(9, 4.5)
    for name in BUFFER_VARIANTS:
        if name not in v:
            continue
        pts = [(r["t"], r["bytes"] / MIB) for r in rows
               if r["variant"] == name and r["bytes"] is not None]
        colour = plots.colour(list(VARIANTS), name)
        ax.plot([t for t, _ in pts], [y for _, y in pts], label=name, color=colour, lw=1.6)
        died = v[name].get("died_at_s")
        if died is not None:
            ax.axvline(died, color=colour, ls=":", lw=1)
            ax.annotate("OOM kill", (died, s["headroom_bytes"] / MIB), fontsize=8,
                        color=colour, xytext=(4, 4), textcoords="offset points")
    ax.axhline(s["headroom_bytes"] / MIB, color="black", ls="--", lw=1,
               label="tier's limit (above rest)")
    ax.axhline(s["haproxy_bound_bytes"] / MIB, color="#999999", ls="--", lw=1,
               label="HAProxy bound 2C x 2 x bufsize")
    ax.set_xlabel("seconds (upload ramp's clock)")
    ax.set_ylabel("memory growth (MiB)")
    ax.set_title(f"{result['params']['uploads']} uploads of {s['body_bytes'] / MIB:g} MiB: "
                 "buffering tier (cgroup usage) vs HAProxy (RSS)", fontsize=9)
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "memory.png")
