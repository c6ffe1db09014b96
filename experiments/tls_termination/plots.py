"""tls-termination's figures, from the results folder alone (result.json and the series
CSVs beside it): handshake outcomes over time with each variant's events, the serial served
over time, and the failures per scenario."""

from __future__ import annotations

import math
from pathlib import Path

from lblab import plots
from lblab.raw import read_table

from .params import BIN_S, VARIANTS

OK, FAIL = "#66a182", "#d1495b"


def _series(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.csv"
    return read_table(path) if path.exists() else []


def _marks(ax, m: dict) -> None:
    """The variant's events (fired) and the instants its claims are about."""
    for i, (what, t) in enumerate(sorted(m.get("events", {}).items(),
                                         key=lambda kv: kv[1] or 0)):
        if t is not None:
            ax.axvline(t, color="#3d405b", lw=1, ls="--")
            ax.annotate(what, (t, 1), xycoords=("data", "axes fraction"), fontsize=6,
                        rotation=90, va="top", ha="right", xytext=(-1, -2 - 4 * i),
                        textcoords="offset points")
    for key, label in (("not_after_t", "notAfter"), ("stale_t", "nextUpdate-300s")):
        if m.get(key) is not None:
            ax.axvline(m[key], color=FAIL, lw=1.2, ls=":")
            ax.annotate(label, (m[key], 0.5), xycoords=("data", "axes fraction"),
                        fontsize=6, color=FAIL, rotation=90, ha="left")


def _grid(n: int):
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig, axes = plots.grid(rows, cols, 11, 2.6 * rows)
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat


def plot(folder: Path, result: dict) -> list[Path]:
    names = [n for n in VARIANTS if n in result["variants"]]
    if not names:
        return []
    return [_outcomes(folder, result, names), _serials(folder, result, names),
            _failures(folder, result, names)]


def _outcomes(folder: Path, result: dict, names: list[str]) -> Path:
    rows = _series(folder, "outcomes")
    fig, axes = _grid(len(names))
    for ax, name in zip(axes, names, strict=False):
        mine = [r for r in rows if r["variant"] == name]
        t = [r["t"] for r in mine]
        good = [r["ok"] / BIN_S for r in mine]
        bad = [r["failed"] / BIN_S for r in mine]
        ax.bar(t, good, width=BIN_S, align="edge", color=OK, label="ok")
        ax.bar(t, bad, width=BIN_S, align="edge", bottom=good, color=FAIL, label="failed")
        _marks(ax, result["variants"][name])
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("handshakes/s", fontsize=8)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Handshake outcomes ({result['params']['rate']:g} new handshakes/s, "
                 f"{BIN_S:g} s bins; dashed: the variant's events)")
    return plots.save(fig, folder / "handshakes.png")


def _serials(folder: Path, result: dict, names: list[str]) -> Path:
    rows = _series(folder, "serials")
    # One list of roles for every panel: panels of a row share their y axis.
    labels = list(dict.fromkeys(r["role"] for r in rows))
    fig, axes = _grid(len(names))
    for ax, name in zip(axes, names, strict=False):
        mine = [r for r in rows if r["variant"] == name]
        for good, colour in ((True, OK), (False, FAIL)):
            pts = [(r["t"], labels.index(r["role"])) for r in mine
                   if (r["outcome"] == "ok") == good]
            ax.scatter([x for x, _ in pts], [y for _, y in pts], s=4, color=colour,
                       label="ok" if good else "failed")
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        _marks(ax, result["variants"][name])
        ax.set_title(name, fontsize=9)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Certificate served per handshake (by its serial's role in the variant)")
    return plots.save(fig, folder / "serials.png")


def _failures(folder: Path, result: dict, names: list[str]) -> Path:
    fig, ax = plots.figure(9, 3.8)
    failed = [result["variants"][n]["failed"] for n in names]
    total = [result["variants"][n]["handshakes"] for n in names]
    ax.bar(names, total, color="#dddddd", label="handshakes")
    ax.bar(names, failed, color=FAIL, label="failed")
    for i, f in enumerate(failed):
        ax.annotate(f"{f}", (i, f), ha="center", va="bottom", fontsize=8)
    restart = result["variants"].get("restart", {})
    if restart.get("gap_s") is not None:
        i = names.index("restart")
        pred = result["params"]["rate"] * restart["gap_s"]
        ax.plot([i - 0.4, i + 0.4], [pred, pred], color="#3d405b", lw=2,
                label="rate x measured gap")
    ax.set_ylabel("handshakes")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(fontsize=8)
    ax.set_title("Failed handshakes (or requests) per scenario")
    return plots.save(fig, folder / "failures.png")
