"""The HTML report in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`) through Selenium.

Skipped where either is missing (`bash scripts/install.sh test` installs them). The page is
opened from a file with every host unresolvable, so anything it tried to fetch would fail; it
must load no resource at all, and each chart must have a size and visible content.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from browserkit import CHROMIUM, DRIVER, chromium
from runkit import vv, write_run

webdriver = pytest.importorskip("selenium.webdriver")
Image = pytest.importorskip("PIL.Image")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")

CHARTS = {"ttfa_s", "e2e_s", "rtf", "timeline", "throughput", "memory", "cpu", "continuity"}


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def drawn(png: bytes) -> tuple[float, int]:
    """(share of pixels that are not near-white, number of distinct colours) of a screenshot."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return float((pixels.min(axis=1) < 230).mean()), len(np.unique(pixels, axis=0))


def open_page(browser, path):
    from selenium.webdriver.common.by import By

    browser.get(path.as_uri())
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # nothing fetched
    return {el.get_attribute("id").removeprefix("chart-"): el for el in browser.find_elements(By.CSS_SELECTOR, "figure.chart")}


def test_every_chart_of_a_thousand_request_report_is_visible(browser, tmp_path):
    run_dir = write_run(tmp_path / "runs", n=1200, seed=3, duration_s=240)
    page = tmp_path / "report.html"
    assert vv("report", str(run_dir), "--format", "html", "--out", str(page)).returncode == 0
    figures = open_page(browser, page)
    assert set(figures) == CHARTS
    ink, colours = drawn(browser.get_screenshot_as_png())
    assert ink > 0.02 and colours > 8, (ink, colours)  # the top of the page is not blank
    for name, figure in figures.items():
        svg = figure.find_element("css selector", "svg")
        assert svg.size["width"] > 400 and svg.size["height"] > 100, (name, svg.size)
        browser.execute_script("arguments[0].scrollIntoView()", figure)
        ink, colours = drawn(svg.screenshot_as_png)
        assert ink > 0.01 and colours > 4, (name, ink, colours)  # drawn, not an empty box


def test_the_compare_page_shows_both_runs(browser, tmp_path):
    a, b = write_run(tmp_path / "a", seed=1), write_run(tmp_path / "b", seed=2, slow=1.3)
    page = tmp_path / "compare.html"
    assert vv("compare", str(a), str(b), "--format", "html", "--out", str(page)).returncode == 1
    figures = open_page(browser, page)
    assert set(figures) == {"ttfa_s", "e2e_s"}
    for figure in figures.values():
        browser.execute_script("arguments[0].scrollIntoView()", figure)
        ink, _ = drawn(figure.find_element("css selector", "svg").screenshot_as_png)
        assert ink > 0.01
