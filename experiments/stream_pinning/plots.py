"""stream-pinning's figures, from the results folder alone (result.json and the series CSVs):
every prediction they draw is in result.json's analysis or in the series' predicted columns."""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table

from .params import LOSS, LOSS_BACKOFF, MAX_AGE, NO_JITTER, PINNED, UNARY, VARIANTS

STREAM_VARIANTS = (PINNED, MAX_AGE, NO_JITTER, LOSS, LOSS_BACKOFF)


def _series(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.csv"
    return read_table(path) if path.exists() else []


def plot(folder: Path, result: dict) -> list[Path]:
    made = [_new_share(folder, result), _per_backend(folder, result),
            _reconnects(folder, result), _rebalance(folder, result)]
    return [m for m in made if m is not None]


def _mark(ax, result: dict, name: str) -> None:
    t = result["variants"][name].get("t_event")
    if t is not None:
        label = "backend killed" if name in (LOSS, LOSS_BACKOFF) else "scale-out (t1)"
        ax.axvline(t, color="#aa3333", ls=":", lw=1.2, label=label)


def _new_share(folder: Path, result: dict) -> Path | None:
    names = [n for n in (PINNED, UNARY, MAX_AGE, NO_JITTER) if n in result["variants"]]
    if not names:
        return None
    active, unary = _series(folder, "active-streams"), _series(folder, "unary-share")
    share = result["analysis"]["new_share"]
    fig, axes = plots.grid(1, len(names), 3.6 * len(names), 3.6)
    for ax, name in zip(axes[0], names, strict=True):
        rows = unary if name == UNARY else [r for r in active if r["variant"] == name]
        kinds = [("new_share", "calls (per second)", "o-")] if name == UNARY else \
            [("new_share_grpc", "gRPC streams", "o-"), ("new_share_ws", "WebSockets", "s:")]
        for key, label, style in kinds:
            pts = [(r["t"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot([t for t, _ in pts], [y for _, y in pts], style, ms=3, lw=1.2,
                        color=plots.colour(list(VARIANTS), name), label=label,
                        alpha=1.0 if key != "new_share_ws" else 0.6)
        pred = [(r["t"], r["predicted_share"]) for r in rows
                if r.get("predicted_share") is not None]
        ax.plot([t for t, _ in pred], [y for _, y in pred], color="#333333", lw=1, ls="--",
                label="predicted")
        ax.axhline(share, color="#999999", lw=0.8, label="M/(N+M)")
        _mark(ax, result, name)
        ax.set_title(name)
        ax.set_xlabel("seconds (client's clock)")
    axes[0][0].set_ylabel("share on the new backends")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("The new backends' share after the scale-out: measured vs predicted")
    return plots.save(fig, folder / "new-share.png")


def _per_backend(folder: Path, result: dict) -> Path | None:
    names = [n for n in STREAM_VARIANTS if n in result["variants"]]
    if not names:
        return None
    p = result["params"]
    backends = [f"b{i}" for i in range(1, p["backends"] + p["new_backends"] + 1)]
    active = _series(folder, "active-streams")
    fig, axes = plots.grid(1, len(names), 3.4 * len(names), 3.6)
    for ax, name in zip(axes[0], names, strict=True):
        rows = [r for r in active if r["variant"] == name]
        for i, b in enumerate(backends):
            ax.plot([r["t"] for r in rows], [r[f"{b}_active"] for r in rows],
                    lw=1.3, ls="-" if i < p["backends"] else "--",
                    color=plots.PALETTE[i % len(plots.PALETTE)], label=b)
        _mark(ax, result, name)
        ax.set_title(name)
        ax.set_xlabel("seconds")
    axes[0][0].set_ylabel("active streams (backends' counts)")
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.suptitle("Streams per backend (new backends dashed)")
    return plots.save(fig, folder / "per-backend-streams.png")


def _reconnects(folder: Path, result: dict) -> Path | None:
    names = [n for n in (MAX_AGE, NO_JITTER, LOSS, LOSS_BACKOFF) if n in result["variants"]]
    if not names:
        return None
    pred, w = result["analysis"]["predicted"], result["analysis"]["peak_window_s"]
    lines = {MAX_AGE: [(pred["jitter_peak_bound"] / w, "peak bound (jitter)"),
                       (pred["mean_reconnect_rate"], "K / 0.2A")],
             NO_JITTER: [(pred["no_jitter_peak"] / w, "K in one window")],
             LOSS: [(pred["lost_streams"] / w, "K/N in one window")],
             LOSS_BACKOFF: [(pred["backoff_peak_bound"] / w, "peak bound (backoff)")]}
    rows = _series(folder, "reconnects")
    fig, axes = plots.grid(1, len(names), 3.4 * len(names), 3.4)
    for ax, name in zip(axes[0], names, strict=True):
        mine = [r for r in rows if r["variant"] == name]
        ax.bar([r["t"] for r in mine], [r["per_s"] for r in mine], width=w, align="edge",
               color=plots.colour(list(VARIANTS), name))
        for y, label in lines[name]:
            ax.axhline(y, color="#333333", ls="--", lw=0.9, label=label)
        _mark(ax, result, name)
        ax.set_title(name)
        ax.set_xlabel("seconds")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"reconnects per second ({w:g} s bins)")
    fig.suptitle("Reconnects per second: max-age with and without jitter, backend loss")
    return plots.save(fig, folder / "reconnects.png")


def _rebalance(folder: Path, result: dict) -> Path | None:
    predicted = result["analysis"]["predicted"].get("rebalance_s", {})
    names = [n for n in (PINNED, UNARY, MAX_AGE, NO_JITTER) if n in result["variants"]]
    if not names:
        return None
    fig, ax = plots.figure(6.5, 3.6)
    xs = range(len(names))
    measured = [result["variants"][n].get("rebalance_s") for n in names]
    ax.bar([x - 0.2 for x in xs], [m if m is not None else 0 for m in measured], 0.4,
           color=[plots.colour(list(VARIANTS), n) for n in names], label="measured")
    ax.bar([x + 0.2 for x in xs], [predicted.get(n) or 0 for n in names], 0.4,
           color="#bbbbbb", label="predicted")
    for x, m in zip(xs, measured, strict=True):
        if m is None:
            ax.text(x - 0.2, 0, "never", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("seconds after t1")
    ax.set_title("Time to rebalance: the new backends within 3 binomial errors of M/(N+M)")
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "rebalance.png")
