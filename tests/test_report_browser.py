"""The HTML report renders in a real browser: headless Chromium loads it and every table and image shows.

Chromium dumps the DOM after the page's load event; a check script (added to a copy of the report, so
the report itself stays script-free) writes into the DOM how many tables exist and how many images
decoded (``naturalWidth > 0``), which proves the base64-embedded PNGs are valid, not merely present.
Skipped, with the reason, when no Chromium/Chrome binary is installed (``.ci/run`` installs Debian's).
Set ``RECSCI_REPORT_SCREENSHOT=<file.png>`` to also save a screenshot of the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from recsci.core.report.aggregate import Layout, MetricSpec
from recsci.core.report.anchors import Anchors
from recsci.core.report.build import build_report
from tests.core.test_report import make_run, two_models

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# Without these, headless Chromium in a closed network waits on connections (sync, updates, QUIC).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=5000",
]

CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const check = document.createElement("pre");
  check.id = "render-check";
  check.textContent = JSON.stringify({
    tables: document.querySelectorAll("table").length,
    rows: document.querySelectorAll("tbody tr").length,
    images: images.length,
    decoded: images.filter((img) => img.complete && img.naturalWidth > 0).length,
    widths: images.map((img) => img.naturalWidth),
  });
  document.body.appendChild(check);
});
</script>"""


def find_browser() -> str | None:
    configured = os.environ.get("RECSCI_CHROMIUM")
    if configured:
        return configured
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


BROWSER = find_browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason=f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH, or RECSCI_CHROMIUM); "
    "install one with `apt-get install -y chromium`",
)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [BROWSER, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_html_report_renders_its_tables_and_every_image_in_chromium(tmp_path: Path) -> None:
    runs = two_models(tmp_path / "runs")
    make_run(runs / "broken", write_metrics=False)  # a "not completed" table too
    anchors_file = tmp_path / "anchors.yaml"
    anchors_file.write_text("source: Paper\nunit: percent\nrows: [{label: P, metrics: {test/auc: 90.1}}]\n")
    layout = Layout(["model"], ["seed"], [MetricSpec("test/auc", "AUC"), MetricSpec("test/mrr", "MRR")])
    files = build_report(
        runs,
        layout,
        anchors=Anchors.load(anchors_file),
        plots=["metric_bars", {"_target_": "metric_bars", "metrics": ["test/auc"]}],
    )
    html = files.html.read_text()
    expected_tables, expected_images = html.count("<table>"), html.count("<img ")
    assert (expected_tables, expected_images) == (3, 2)  # results, not completed, all runs; two plots

    checked = tmp_path / "checked.html"
    checked.write_text(html.replace("</body>", CHECK + "</body>"))
    result = chromium("--dump-dom", checked.as_uri(), profile=tmp_path / "profile")
    match = re.search(r'<pre id="render-check">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no render check in the dumped DOM (exit {result.returncode}): {result.stderr[-2000:]}"
    rendered = json.loads(match.group(1).replace("&quot;", '"'))
    assert rendered["tables"] == expected_tables
    assert rendered["images"] == expected_images
    assert rendered["decoded"] == expected_images, f"images not decoded: widths {rendered['widths']}"
    assert rendered["rows"] == sum(1 for _ in re.finditer(r"<tr(?: class=\"[a-z]*\")?><td", html))

    screenshot = os.environ.get("RECSCI_REPORT_SCREENSHOT")
    if screenshot:
        shot = chromium(
            f"--screenshot={screenshot}",
            "--window-size=1280,2400",
            files.html.as_uri(),
            profile=tmp_path / "p2",
        )
        assert Path(screenshot).is_file(), shot.stderr[-2000:]
