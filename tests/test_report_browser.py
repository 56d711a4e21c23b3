"""The Snakemake report opened in headless Chromium: every figure loads.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them when
CI=true). Elsewhere the test is skipped with a message when they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workflow_utils import ROOT, SNAKEMAKE, run_snakemake, write_dataset

pytestmark = pytest.mark.workflow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"


def _browser_available() -> bool:
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not _browser_available():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium/chromedriver missing in CI: .ci/run must install them")
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    work = tmp_path_factory.mktemp("report")
    config = write_dataset(work, n_images=1, n_frames=3)
    config["datasets"]["tiny"]["traces"] = {"baseline_frames": [0, 0]}
    assert run_snakemake(work, config).returncode == 0
    result = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
                             "--configfile", str(work / "config.yaml"), "--report", str(work / "report.html")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "report.html"


def _driver(tmp: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp / 'profile'}", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_every_figure_of_the_report_loads(report, tmp_path):
    driver = _driver(tmp_path)
    try:
        driver.set_script_timeout(120)
        driver.get(report.as_uri())
        checked = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const items = Object.entries(results).filter(([k, v]) => (v.mime_type || '').startsWith('image/'));
            const out = {n: items.length, failed: [], sizes: []};
            let pending = items.length;
            if (!pending) { done(out); return; }
            for (const [key, v] of items) {
                const img = new Image();
                img.onload = () => { out.sizes.push([key, img.naturalWidth, img.naturalHeight]);
                                     if (--pending === 0) done(out); };
                img.onerror = () => { out.failed.push(key); if (--pending === 0) done(out); };
                img.src = v.data_uri;
            }
        """)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        driver.quit()
    assert checked["n"] >= 8, checked  # QC images and dataset figures
    assert checked["failed"] == []
    assert all(w > 100 and h > 100 for _, w, h in checked["sizes"])
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
