"""header-normalization's figure, from the results folder alone: the verdict matrix (cases x
components) from matrix.csv, the RFC's verdict beside each row from result.json."""

from __future__ import annotations

from pathlib import Path

from lblab import plots
from lblab.raw import read_table

COLOURS = {"reject": "#d9534f", "normalise": "#f0ad4e", "accept": "#5cb85c",
           "desync": "#6f42c1", "forwarded": "#9e9e9e"}
LETTER = {"reject": "R", "normalise": "N", "accept": "A", "desync": "D", "forwarded": "F"}


def plot(folder: Path, result: dict) -> list[Path]:
    path = folder / "matrix.csv"
    if not path.exists():
        return []
    return [_matrix(folder, result, read_table(path))]


def _matrix(folder: Path, result: dict, rows: list[dict]) -> Path:
    from matplotlib.patches import Patch

    cases = [c["name"] for c in result["analysis"]["cases"]]
    rfc = {c["name"]: c["verdict"] for c in result["analysis"]["cases"]}
    columns = list(dict.fromkeys((r["variant"], r["component"]) for r in rows))
    cell = {(r["variant"], r["component"], r["case"]): r["verdict"] for r in rows}
    fig, ax = plots.figure(2.2 + 0.42 * len(columns), 1.2 + 0.26 * len(cases))
    for x, (variant, comp) in enumerate(columns):
        for y, case in enumerate(cases):
            verdict = cell.get((variant, comp, case))
            if verdict is None:
                continue
            ax.add_patch(plots_rect(x, y, COLOURS.get(verdict, "#ffffff"),
                                    edge="#222222" if comp == "proxy" else "#ffffff"))
            ax.text(x + 0.5, y + 0.5, LETTER.get(verdict, "?"), ha="center", va="center",
                    fontsize=6, color="white")
    ax.set_xlim(0, len(columns))
    ax.set_ylim(len(cases), 0)
    ax.set_xticks([x + 0.5 for x in range(len(columns))])
    ax.set_xticklabels([f"{v}: {c}" for v, c in columns], rotation=70, ha="right", fontsize=7)
    ax.set_yticks([y + 0.5 for y in range(len(cases))])
    ax.set_yticklabels([f"{c}  [RFC: {rfc[c]}]" for c in cases], fontsize=7)
    for x, (variant, _) in enumerate(columns):
        if x and columns[x - 1][0] != variant:
            ax.axvline(x, color="black", lw=1.2)
    ax.legend(handles=[Patch(color=col, label=name) for name, col in COLOURS.items()],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax.set_title("What each component did with each case (R reject, N normalise, A accept, "
                 "D desync; boxed: HAProxy's own verdict)", fontsize=9)
    return plots.save(fig, folder / "matrix.png")


def plots_rect(x: float, y: float, colour: str, edge: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, facecolor=colour, edgecolor=edge, lw=0.6)
