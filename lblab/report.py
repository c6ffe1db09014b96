"""`lblab report` and `lblab compare`: HTML and figures from results folders alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jinja2

from lblab import plots
from lblab.errors import UsageError
from lblab.results import atomic_write, experiment_folders, load_result

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def _entry(folder: Path, base: Path, redraw: bool = False) -> dict[str, Any]:
    if redraw and load_result(folder):
        from lblab import catalogue, driver

        driver.redraw(folder, catalogue.load)
    result = load_result(folder)
    err = folder / "error.json"
    entry: dict[str, Any] = {"name": folder.name, "folder": str(folder), "result": result,
                             "error": json.loads(err.read_text())["error"].splitlines()[-1]
                             if err.exists() else ""}
    if result:
        topo = folder / "topology.png"
        if not topo.exists():
            plots.draw_topology(result.get("topology", {}), topo)
        entry["claims"] = result["claims"]
        entry["holding"] = sum(c["holds"] for c in result["claims"])
        entry["skipped"] = sum(bool(c.get("skipped")) for c in result["claims"])
        entry["plots"] = [os.path.relpath(p, base) for p in sorted(folder.glob("*.png"))]
        entry["repetitions"] = []
        for rep in result.get("repetitions", []):
            sub = load_result(folder / rep["folder"])
            entry["repetitions"].append({
                "name": rep["folder"], "result": sub, "claims": sub["claims"] if sub else [],
                "plots": [os.path.relpath(p, base)
                          for p in sorted((folder / rep["folder"]).glob("*.png"))]})
    return entry


def report(root: Path, redraw: bool = False) -> Path:
    if not root.is_dir():
        raise UsageError(f"{root} is not a results folder (give the --out of `lblab run`)")
    folders = experiment_folders(root)
    if not folders:
        raise UsageError(f"{root} holds no experiment results")
    entries = [_entry(f, root, redraw) for f in folders]
    html = TEMPLATES.get_template("report.html.j2").render(
        title="lblab report", subtitle=f"results in {root.resolve()}", experiments=entries,
        fmt=fmt)
    out = root / "report.html"
    atomic_write(out, html)
    return out


def compare(a: Path, b: Path, out: Path) -> Path:
    """Claims and numeric variant metrics of the experiments present in both folders."""
    fa = {f.name: f for f in experiment_folders(a)}
    fb = {f.name: f for f in experiment_folders(b)}
    common = sorted(set(fa) & set(fb))
    if not common:
        raise UsageError(f"{a} and {b} share no completed experiment")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in common:
        ra, rb = load_result(fa[name]), load_result(fb[name])
        if not ra or not rb:
            continue
        rows.append(_compare_one(name, ra, rb, a.name or str(a), b.name or str(b), out))
    html = ["<!doctype html><meta charset='utf-8'><title>lblab compare</title>",
            "<style>body{font-family:system-ui;max-width:1100px;margin:2em auto}"
            "td,th{border:1px solid #ddd;padding:.3em .6em}table{border-collapse:collapse}"
            "img{max-width:100%}</style>",
            f"<h1>lblab compare</h1><p>A = {a.resolve()}<br>B = {b.resolve()}</p>"]
    for name, claims, images in rows:
        html.append(f"<h2>{name}</h2><table><tr><th>claim</th><th>predicted A</th>"
                    "<th>measured A</th><th>A</th><th>predicted B</th><th>measured B</th>"
                    "<th>B</th></tr>")
        for cid, ca, cb in claims:
            html.append(
                f"<tr><td>{cid}</td><td>{fmt(ca.get('predicted'))}</td>"
                f"<td>{fmt(ca.get('measured'))}</td><td>{_verdict(ca)}</td>"
                f"<td>{fmt(cb.get('predicted'))}</td><td>{fmt(cb.get('measured'))}</td>"
                f"<td>{_verdict(cb)}</td></tr>")
        html.append("</table>")
        html += [f"<img src='{img.name}'>" for img in images]
    page = out / "compare.html"
    atomic_write(page, "\n".join(html))
    return page


def _verdict(claim: dict) -> str:
    return "" if not claim else ("holds" if claim["holds"] else "does not hold")


def _compare_one(name: str, ra: dict, rb: dict, la: str, lb: str,
                 out: Path) -> tuple[str, list, list[Path]]:
    ca = {c["id"]: c for c in ra["claims"]}
    cb = {c["id"]: c for c in rb["claims"]}
    claims = [(cid, ca.get(cid, {}), cb.get(cid, {})) for cid in dict.fromkeys([*ca, *cb])]
    images = []
    variants = [v for v in ra.get("variants", {}) if v in rb.get("variants", {})]
    metrics = sorted({m for v in variants for m, x in ra["variants"][v].items()
                      if isinstance(x, (int, float)) and not isinstance(x, bool)
                      and isinstance(rb["variants"][v].get(m), (int, float))})
    for metric in metrics:
        fig, ax = plots.figure(7.0, 3.2)
        xs = range(len(variants))
        ax.bar([x - 0.2 for x in xs], [ra["variants"][v][metric] for v in variants], 0.4,
               label=f"A: {la}", color=plots.PALETTE[0])
        ax.bar([x + 0.2 for x in xs], [rb["variants"][v][metric] for v in variants], 0.4,
               label=f"B: {lb}", color=plots.PALETTE[1])
        ax.set_xticks(list(xs), variants, rotation=15)
        ax.set_title(f"{name}: {metric}")
        ax.legend()
        images.append(plots.save(fig, out / f"{name}--{metric}.png"))
    return name, claims, images
