"""sticky-sessions' figures, from the results folder alone (result.json and the series CSVs
beside it): every bound drawn is a claim's, in result.json."""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table

from .params import VARIANTS


def _series(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.csv"
    return read_table(path) if path.exists() else []


def _claim(result: dict, cid: str) -> dict | None:
    return next((c for c in result["claims"] if c["id"] == cid), None)


def plot(folder: Path, result: dict) -> list[Path]:
    made = [_lost_carts(folder, result)]
    for fn in (_hot, _recovery, _per_backend):
        path = fn(folder, result)
        if path:
            made.append(path)
    return made


def _bar(ax, x: int, name: str, value: float | None, label: str, claim: dict | None) -> None:
    """A measured share as a bar, its claim's prediction (± tolerance for `near`) on it."""
    ax.bar(x, value or 0, color=plots.colour(list(VARIANTS), name), width=0.6, label=label)
    if claim and claim["comparison"] == "near":
        ax.errorbar(x, claim["predicted"], yerr=claim["tolerance_value"], color="black",
                    capsize=8, marker="_", ms=30)
    elif claim and not claim.get("skipped"):
        ax.scatter(x, claim["predicted"], color="black", marker="_", s=600)


def _lost_carts(folder: Path, result: dict) -> Path:
    v = result["variants"]
    fig, axes = plots.figure(12, 4.2, ncols=2)
    rows = [(n, cid) for n, cid in (("cookie-local", "cookie-local-lost-carts"),
                                    ("drain", "drain-lost-carts"),
                                    ("cookie-redis", "cookie-redis-no-lost-carts")) if n in v]
    for x, (name, cid) in enumerate(rows):
        m = v[name]
        active = m.get("active") or 0
        share = (m.get("lost") or 0) / active if active else None
        _bar(axes[0], x, name, share, f"{name}: {m.get('lost')} of {active}",
             _claim(result, cid))
    axes[0].set_xticks(range(len(rows)), [n for n, _ in rows])
    axes[0].set_ylabel("share of active sessions that lost their cart")
    axes[0].set_title(f"one of {result['params']['backends']} backends fails "
                      "(black: predicted ± tolerance)")
    sticks = [(n, f"{n}-lost-affinity") for n in ("stick-no-peers", "stick-peers") if n in v]
    for x, (name, cid) in enumerate(sticks):
        m = v[name]
        _bar(axes[1], x, name, m.get("moved_share"),
             f"{name}: {m.get('moved')} of {m.get('active')}", _claim(result, cid))
    axes[1].set_xticks(range(len(sticks)), [n for n, _ in sticks])
    axes[1].set_ylabel("share of active sessions moved to another backend")
    axes[1].set_title("one of two HAProxies is withdrawn by the fabric")
    for ax, used in ((axes[0], rows), (axes[1], sticks)):
        if used:
            ax.legend(fontsize=8)
    return plots.save(fig, folder / "lost-carts.png")


def _hot(folder: Path, result: dict) -> Path | None:
    v = result["variants"]
    names = [n for n in ("hot-backends", "hot-roundrobin") if n in v]
    if not names:
        return None
    sim = _series(folder, "hot-simulated")
    fig, axes = plots.figure(12, 4.2, ncols=2)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        served = v[name]["served"]
        xs = [i + k * width for i in range(len(served))]
        axes[0].bar(xs, list(served.values()), width=width, label=name,
                    color=plots.colour(list(VARIANTS), name))
        axes[0].set_xticks([i + 0.4 - width / 2 for i in range(len(served))], list(served))
    axes[0].set_ylabel("requests answered (HAProxy hrsp_2xx)")
    axes[0].set_title("per-backend load")
    axes[0].legend(fontsize=8)
    ax = axes[1]
    for kind, name, cid in (("affinity", "hot-backends", "hot-backends-imbalance"),
                            ("multinomial", "hot-roundrobin", "hot-roundrobin-imbalance")):
        rows = [r for r in sim if r["kind"] == kind]
        colour = plots.colour(list(VARIANTS), name)
        if rows:
            ax.stairs([r["count"] for r in rows], [rows[0]["lo"]] + [r["hi"] for r in rows],
                      color=colour, fill=True, alpha=0.3, label=f"simulated ({kind})")
        if name in v and v[name].get("max_over_mean") is not None:
            ax.axvline(v[name]["max_over_mean"], color=colour, lw=2,
                       label=f"{name}: measured {v[name]['max_over_mean']:.3f}")
        c = _claim(result, cid)
        if c and not c.get("skipped"):
            for x in (c["predicted"], c.get("upper")):
                if x is not None:
                    ax.axvline(x, color=colour, ls="--", lw=1)
    ax.set_xlabel("max / mean requests per backend")
    ax.set_ylabel("simulated trials")
    ax.set_title("hot backends: measured vs simulated (dashed: the claims' bounds)")
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "hot-backends.png")


def _recovery(folder: Path, result: dict) -> Path | None:
    rows = [r for r in _series(folder, "recovery-curve") if r["variant"] == "recovery"]
    if not rows:
        return None
    fig, ax = plots.figure(7.5, 4.2)
    ts = [r["since_up"] for r in rows]
    ax.plot(ts, [r["predicted"] for r in rows], color="black", lw=1.5,
            label="(1/N)(1 - e^(-t/tau))")
    ax.fill_between(ts, [r["predicted"] - r["tolerance"] for r in rows],
                    [r["predicted"] + r["tolerance"] for r in rows], color="#cccccc",
                    alpha=0.6, label="± 3 binomial errors")
    ax.plot(ts, [r["share"] for r in rows], marker="o", lw=1.2,
            color=plots.colour(list(VARIANTS), "recovery"), label="measured share")
    ax.set_xlabel("seconds since HAProxy holds the returned backend UP")
    ax.set_ylabel("its share of the active sessions")
    ax.set_title("recovery: only new sessions reach the returned backend")
    ax.legend(fontsize=8)
    return plots.save(fig, folder / "recovery.png")


def _per_backend(folder: Path, result: dict) -> Path | None:
    names = [n for n in ("cookie-local", "recovery", "drain") if n in result["variants"]]
    rows = _series(folder, "per-backend")
    if not names or not rows:
        return None
    failed = result["analysis"].get("failed")
    fig, axes = plots.grid(2, len(names), 4.5 * len(names), 6.5)
    for col, name in enumerate(names):
        mine = [r for r in rows if r["variant"] == name]
        for srv in dict.fromkeys(r["backend"] for r in mine):
            pts = [r for r in mine if r["backend"] == srv]
            style = {"color": "#d1495b", "lw": 2.0} if srv == failed else {
                "color": "#999999", "lw": 0.8}
            axes[0][col].plot([r["t"] for r in pts], [r["requests_per_s"] for r in pts],
                              label=srv if srv == failed else None, **style)
            axes[1][col].plot([r["t"] for r in pts], [r["sessions"] for r in pts], **style)
        axes[0][col].set_title(name)
        axes[0][col].legend(fontsize=8)
        axes[1][col].set_xlabel("seconds (the users' clock)")
    axes[0][0].set_ylabel("requests/s answered (HAProxy)")
    axes[1][0].set_ylabel("active sessions (users' view)")
    return plots.save(fig, folder / "per-backend.png")
