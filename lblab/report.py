"""`lblab report` and `lblab compare`: HTML and figures from results folders alone.

Everything here reads result.json and the PNGs beside it: nothing imports an experiment, so
a failure mode added later gets its overview row, compare section and JUnit cases unchanged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import xml.etree.ElementTree as ET
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
        if math.isnan(value):
            return "n/a"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value))


def predicted_text(c: dict) -> str:
    if c.get("skipped"):
        return ""
    if c.get("upper") is not None:
        return f"{fmt(c['predicted'])}-{fmt(c['upper'])}"
    return fmt(c.get("predicted"))


def status(c: dict) -> str:
    """holds, fails or skipped: the CSS class and the JUnit outcome of a claim row."""
    return "skipped" if c.get("skipped") else "holds" if c.get("holds") else "fails"


def verdict(c: dict) -> str:
    if not c:
        return ""
    return c.get("verdict") or ("holds" if c.get("holds") else "does not hold")


def variant_names(result: dict) -> list[str]:
    """The planned variants in order (a variant not run with --only is still planned)."""
    names = [p["name"] if isinstance(p, dict) else str(p) for p in result.get("plan") or []]
    return list(dict.fromkeys([*names, *(result.get("variants") or {})]))


def names_variant(claim_id: str, variant: str) -> bool:
    """A claim id names a variant when the variant is one of its dash-separated parts
    (`select15-add-broken` names `select15-add`, `littles-law-churn` names `churn`)."""
    return f"-{variant}-" in f"-{claim_id}-"


def claimed_metrics(result: dict) -> list[str]:
    """Variant metrics that some claim measured: the claim names the variant and its
    measurement equals the metric's value there."""
    found: list[str] = []
    variants = result.get("variants") or {}
    for c in result.get("claims", []):
        m = c.get("measured")
        if not _number(m) or m in (0, 1):  # 0 and 1 match too many counters by chance
            continue
        for v, metrics in variants.items():
            if isinstance(metrics, dict) and names_variant(c["id"], v):
                found += [k for k, x in metrics.items() if _number(x) and k not in found
                          and math.isclose(x, m, rel_tol=1e-9, abs_tol=1e-12)]
    return found


def headline(result: dict, variant: str) -> dict[str, Any]:
    """One number for a variant's overview cell: the first claim that names the variant,
    else the first numeric metric the variant measured (not one of its settings, not a
    prediction)."""
    for c in result.get("claims", []):
        if names_variant(c["id"], variant):
            value = "skipped" if c.get("skipped") else fmt(c.get("measured"))
            return {"variant": variant, "value": value, "label": c["id"], "status": status(c),
                    "title": f"{c['id']}: {verdict(c)} (predicted {predicted_text(c)})"}
    metrics = (result.get("variants") or {}).get(variant)
    if metrics is None:
        return {"variant": variant, "value": "not run", "label": "", "status": "skipped",
                "title": "this variant was not run"}
    settings = {k for p in result.get("plan") or [] if isinstance(p, dict)
                and isinstance(p.get("setting"), dict) for k in p["setting"]}
    candidates = [k for k, v in metrics.items()
                  if _number(v) and k not in settings and not k.startswith("predicted")]
    others = [m for m in (result.get("variants") or {}).values() if isinstance(m, dict)]
    # best: the metric another variant's claim measured (select13-add shows broken_fraction
    # because select15-add's claim is on it); next, one that differs between variants (not
    # the fault's time or the connections every variant opened)
    claimed = [k for k in claimed_metrics(result) if k in candidates]
    varying = [k for k in candidates if len({fmt(m.get(k)) for m in others}) > 1]
    for key in claimed or varying or candidates:
        return {"variant": variant, "value": fmt(metrics[key]), "label": key,
                "status": "metric", "title": f"{key} (no claim names this variant)"}
    return {"variant": variant, "value": "", "label": "", "status": "metric", "title": ""}


def wall_time_text(result: dict) -> str:
    """A run's wall time and where it went (result.json `timing`, written by the driver)."""
    total = result.get("duration_s")
    if total is None:
        return "n/a"
    t = result.get("timing")
    if not t:
        return f"{total:.0f} s"
    measured = sum(t["measure_s"].values())
    return (f"{total:.0f} s: bring-up {t['bring_up_s']:.0f} s, setup {t['setup_s']:.0f} s, "
            f"measurement {measured:.0f} s over {len(t['measure_s'])} variants, teardown "
            f"{t['teardown_s']:.0f} s, analysis {t['conclude_s']:.0f} s")


def environment_line(env: dict) -> str:
    tools = (env.get("capabilities") or {}).get("tools") or {}
    tool_text = ", ".join(f"{k} {v or 'missing'}" for k, v in tools.items())
    return (f"kernel {env.get('kernel', 'n/a')} · OVS datapath {env.get('datapath', 'n/a')}"
            f" · {tool_text or 'no tools recorded'}")


def _entry(folder: Path, base: Path, redraw: bool = False) -> dict[str, Any]:
    if redraw and load_result(folder):
        from lblab import catalogue, driver

        driver.redraw(folder, catalogue.load)
    result = load_result(folder)
    err = folder / "error.json"
    entry: dict[str, Any] = {"name": folder.name, "folder": str(folder), "result": result,
                             "error": json.loads(err.read_text())["error"].splitlines()[-1]
                             if err.exists() else "",
                             "claims": [], "holding": 0, "skipped": 0, "failing": [],
                             "problems": []}
    if result:
        topo = folder / "topology.png"
        if not topo.exists():
            plots.draw_topology(result.get("topology", {}), topo)
        entry["claims"] = result["claims"]
        entry["holding"] = sum(c["holds"] for c in result["claims"])
        entry["skipped"] = sum(bool(c.get("skipped")) for c in result["claims"])
        entry["failing"] = [c for c in result["claims"] if status(c) == "fails"]
        entry["problems"] = [(v, pr) for v, prs in
                             (result.get("measurement_problems") or {}).items() for pr in prs]
        entry["cells"] = [headline(result, v) for v in variant_names(result)]
        entry["environment_line"] = environment_line(result.get("environment") or {})
        entry["plots"] = [os.path.relpath(p, base) for p in sorted(folder.glob("*.png"))]
        entry["repetitions"] = []
        for rep in result.get("repetitions", []):
            sub = load_result(folder / rep["folder"])
            entry["repetitions"].append({
                "name": rep["folder"], "result": sub, "claims": sub["claims"] if sub else [],
                "plots": [os.path.relpath(p, base)
                          for p in sorted((folder / rep["folder"]).glob("*.png"))]})
    return entry


def _entries(root: Path, redraw: bool) -> list[dict[str, Any]]:
    if not root.is_dir():
        raise UsageError(f"{root} is not a results folder (give the --out of `lblab run`)")
    folders = experiment_folders(root)
    if not folders:
        raise UsageError(f"{root} holds no experiment results")
    return [_entry(f, root, redraw) for f in folders]


def report(root: Path, redraw: bool = False, junit: Path | None = None) -> Path:
    entries = _entries(root, redraw)
    environments: dict[str, list[str]] = {}
    for e in entries:
        if e["result"]:
            environments.setdefault(e["environment_line"], []).append(e["name"])
    html = TEMPLATES.get_template("report.html.j2").render(
        title="lblab report", subtitle=f"results in {root.resolve()}", experiments=entries,
        environments=environments, fmt=fmt, predicted_text=predicted_text, status=status,
        verdict=verdict, wall_time_text=wall_time_text)
    out = root / "report.html"
    atomic_write(out, html)
    if junit is not None:
        write_junit(entries, junit)
    return out


def junit_tree(entries: list[dict[str, Any]]) -> ET.ElementTree:
    """One testsuite per experiment, one testcase per claim (classname the experiment, name
    the claim id); a claim that does not hold is a failure, a skipped one skipped. An
    incomplete experiment is one errored case, an invalid measurement one failure."""
    suites = ET.Element("testsuites", name="lblab")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for e in entries:
        suite = ET.SubElement(suites, "testsuite", name=e["name"])
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

        def case(name: str, _suite: ET.Element = suite, _e: dict = e) -> ET.Element:
            return ET.SubElement(_suite, "testcase", classname=_e["name"], name=name,
                                 time="0")

        if not e["result"]:
            tc = case("result")
            ET.SubElement(tc, "error", message="incomplete: no result.json (interrupted or "
                          f"failed){': ' + e['error'] if e['error'] else ''}")
            counts["tests"] += 1
            counts["errors"] += 1
        else:
            for c in e["claims"]:
                tc = case(c["id"])
                counts["tests"] += 1
                outcome = status(c)
                if outcome == "skipped":
                    ET.SubElement(tc, "skipped", message=str(c["skipped"]))
                    counts["skipped"] += 1
                elif outcome == "fails":
                    failure = ET.SubElement(
                        tc, "failure", type="claim",
                        message=f"predicted {predicted_text(c)}, measured "
                                f"{fmt(c.get('measured'))}, tolerance {c.get('tolerance')}")
                    failure.text = "\n".join(x for x in (c.get("statement", ""), verdict(c),
                                                         c.get("note", "")) if x)
                    counts["failures"] += 1
            for variant, problems in (e["result"].get("measurement_problems") or {}).items():
                for problem in problems:
                    tc = case(f"measurement:{variant}")
                    ET.SubElement(tc, "failure", type="measurement",
                                  message=f"measurement invalid: {problem}")
                    counts["tests"] += 1
                    counts["failures"] += 1
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        suites.set(k, str(v))
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(entries: list[dict[str, Any]], path: Path) -> Path:
    tree = junit_tree(entries)
    body = ET.tostring(tree.getroot(), encoding="unicode")
    atomic_write(path, '<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n")
    return path


def compare(a: Path, b: Path, out: Path) -> Path:
    """A self-contained page: for every experiment in both folders, its parameters (the
    differing ones highlighted), its claims with the delta of B's measurement from A's and
    any verdict change, and each of its plots from A and B side by side (copied under OUT,
    so the page keeps working when OUT is moved or the runs are deleted)."""
    fa = {f.name: f for f in experiment_folders(a)}
    fb = {f.name: f for f in experiment_folders(b)}
    common = sorted(n for n in set(fa) & set(fb) if load_result(fa[n]) and load_result(fb[n]))
    if not common:
        raise UsageError(f"{a} and {b} share no completed experiment")
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for name in common:
        ra, rb = load_result(fa[name]), load_result(fb[name])
        assert ra and rb
        sections.append(_compare_one(name, ra, rb, fa[name], fb[name], out))
    html = TEMPLATES.get_template("compare.html.j2").render(
        title="lblab compare", a=str(a.resolve()), b=str(b.resolve()), sections=sections,
        only_a=sorted(set(fa) - set(common)), only_b=sorted(set(fb) - set(common)),
        fmt=fmt, predicted_text=predicted_text, status=status, verdict=verdict)
    page = out / "compare.html"
    atomic_write(page, html)
    return page


def _copy_plots(folder: Path, dest: Path, out: Path) -> dict[str, str]:
    """Copy a run's PNGs to DEST; their names and paths relative to OUT."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = {}
    for png in sorted(folder.glob("*.png")):
        shutil.copyfile(png, dest / png.name)
        copied[png.name] = os.path.relpath(dest / png.name, out)
    return copied


def _compare_one(name: str, ra: dict, rb: dict, fa: Path, fb: Path,
                 out: Path) -> dict[str, Any]:
    ca = {c["id"]: c for c in ra["claims"]}
    cb = {c["id"]: c for c in rb["claims"]}
    claims = []
    for cid in dict.fromkeys([*ca, *cb]):
        x, y = ca.get(cid, {}), cb.get(cid, {})
        mx, my = x.get("measured"), y.get("measured")
        delta = my - mx if _number(mx) and _number(my) else None
        changed = bool(x and y and status(x) != status(y))
        claims.append({"id": cid, "a": x, "b": y, "delta": delta, "changed": changed,
                       "change": f"{verdict(x) or 'absent'} → {verdict(y) or 'absent'}"
                       if changed or not (x and y) else ""})
    pa, pb = ra.get("params") or {}, rb.get("params") or {}
    params = [{"key": k, "a": pa.get(k, "(absent)"), "b": pb.get(k, "(absent)"),
               "differs": pa.get(k, object()) != pb.get(k, object())}
              for k in dict.fromkeys([*pa, *pb])]
    for key in ("seed", "repeat"):
        if key in ra or key in rb:
            params.append({"key": key, "a": ra.get(key, "(absent)"), "b": rb.get(key, "(absent)"),
                           "differs": ra.get(key) != rb.get(key)})
    ea, eb = ra.get("environment") or {}, rb.get("environment") or {}
    env = {"a": environment_line(ea), "b": environment_line(eb)}
    env["differs"] = env["a"] != env["b"]
    imgs_a = _copy_plots(fa, out / "a" / name, out)
    imgs_b = _copy_plots(fb, out / "b" / name, out)
    plot_rows = [{"name": n, "a": imgs_a.get(n), "b": imgs_b.get(n)}
                 for n in sorted(set(imgs_a) | set(imgs_b), key=lambda n: (n == "topology.png", n))]
    return {"name": name, "title": rb.get("title") or ra.get("title") or "",
            "claims": claims, "params": params, "environment": env, "plots": plot_rows,
            "changed": sum(c["changed"] for c in claims),
            "holding_a": sum(bool(c.get("holds")) for c in ra["claims"]),
            "holding_b": sum(bool(c.get("holds")) for c in rb["claims"]),
            "counted_a": sum(not c.get("skipped") for c in ra["claims"]),
            "counted_b": sum(not c.get("skipped") for c in rb["claims"])}
