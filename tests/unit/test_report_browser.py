"""report.html in a real browser: Debian's chromium, headless, no network, no root.

A checker page beside report.html loads it in an iframe (file URLs are one origin with
--allow-file-access-from-files), waits for its load event (every image loaded or failed) and
writes what it found into its own DOM, which --dump-dom prints: how many images there are and
which have naturalWidth 0. A second run loads report.html itself with the browser's log on
stderr and takes the screenshot, kept in the test's temporary folder. Chromium logs every
console message there as an `INFO:CONSOLE` line without its level, and the report has no
scripts, so any such line fails the check (a failed image load is not a console message
there: naturalWidth catches it). The broken-image and console-error cases show the check can
fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lblab.report import report
from tests.unit.test_results_report import draw_png, fake_result

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser"))
                 if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium (Debian package `chromium`; "
    "scripts/provision.sh installs it)")

CHECKER = """<!doctype html><meta charset="utf-8"><title>check</title>
<iframe id="f" src="report.html" style="width:1200px;height:900px"></iframe>
<pre id="out"></pre>
<script>
document.getElementById("f").addEventListener("load", function () {
  var out = {images: 0, broken: [], error: null};
  try {
    var imgs = this.contentDocument.images;
    out.images = imgs.length;
    for (var i = 0; i < imgs.length; i++) {
      if (!imgs[i].complete || imgs[i].naturalWidth === 0) {
        out.broken.push(imgs[i].getAttribute("src"));
      }
    }
  } catch (e) { out.error = String(e); }
  document.getElementById("out").textContent = "LBLAB-CHECK " + JSON.stringify(out);
});
</script>
"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(tmp)}
    assert CHROMIUM
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--mute-audio",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False)


def check_in_browser(page: Path, tmp: Path) -> dict:
    """What a browser sees of PAGE: images, the broken ones, console lines, a screenshot."""
    checker = page.with_name("browser-check.html")
    checker.write_text(CHECKER.replace("report.html", page.name))
    dom = _chromium(tmp, "--allow-file-access-from-files", "--dump-dom", checker.as_uri())
    checker.unlink()
    found = re.search(r"LBLAB-CHECK (\{.*?\})\s*</pre>", dom.stdout)
    assert found, f"the checker page did not report (rc {dom.returncode}): {dom.stderr[-2000:]}"
    result = json.loads(found.group(1))
    assert result["error"] is None, result["error"]
    shot = tmp / "report.png"
    run = _chromium(tmp, "--enable-logging=stderr", "--v=0", "--window-size=1280,2000",
                    f"--screenshot={shot}", page.as_uri())
    result["console"] = [line for line in run.stderr.splitlines()
                         if "CONSOLE" in line or "Uncaught" in line]
    result["screenshot"] = shot
    return result


def _results(root: Path) -> Path:
    a = fake_result(root, "alpha", 1.05)
    draw_png(a.dir / "occupancy.png", 0)
    draw_png(a.dir / "timeline.png", 1)
    b = fake_result(root, "beta", 2.0)
    draw_png(b.dir / "shares.png", 2)
    return report(root)


def test_every_image_of_the_report_loads_without_console_errors(tmp_path):
    page = _results(tmp_path / "results")
    seen = check_in_browser(page, tmp_path)
    # three plots and two topology drawings, each shown once in its section
    assert seen["images"] == 5, seen
    assert seen["broken"] == [], seen
    assert seen["console"] == [], seen
    assert seen["screenshot"].stat().st_size > 10_000


def test_the_check_fails_on_a_missing_image(tmp_path):
    page = _results(tmp_path / "results")
    (tmp_path / "results" / "alpha" / "timeline.png").unlink()
    seen = check_in_browser(page, tmp_path)
    assert seen["images"] == 5
    assert seen["broken"] == ["alpha/timeline.png"], seen


def test_the_check_fails_on_a_console_error(tmp_path):
    page = _results(tmp_path / "results")
    bad = page.with_name("bad.html")
    bad.write_text(page.read_text().replace(
        "</body>", "<script>console.error('boom'); noSuchFunction();</script></body>"))
    seen = check_in_browser(bad, tmp_path)
    assert seen["broken"] == []
    assert any('"boom"' in line for line in seen["console"]), seen
    assert any("Uncaught ReferenceError" in line for line in seen["console"]), seen


def test_the_compare_page_shows_both_runs_plots_after_the_runs_are_gone(tmp_path):
    from lblab.report import compare

    _results(tmp_path / "r1")
    _results(tmp_path / "r2")
    page = compare(tmp_path / "r1", tmp_path / "r2", tmp_path / "cmp")
    shutil.rmtree(tmp_path / "r1")
    shutil.rmtree(tmp_path / "r2")
    seen = check_in_browser(page, tmp_path)
    assert seen["images"] == 10 and seen["broken"] == [] and seen["console"] == [], seen
