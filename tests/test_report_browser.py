"""The reports as a person sees them: rendered by headless Chromium, offline.

Without Chromium or playwright the whole module skips at collection, before the `demo` fixture
would build the demo study for nothing."""
import shutil

import pytest

from tests.test_workflow import analyses

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def open_page(browser, path, tmp_path):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, offline=True)
    page = context.new_page()
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(path.as_uri())
    page.screenshot(path=str(tmp_path / f"{path.parent.name}.png"), full_page=True)
    assert failed == [], "the report must not need the network"
    return page


def test_analysis_report_shows_its_key_elements(browser, demo, tmp_path):
    page = open_page(browser, demo / "asymptomatic_high_burden/report.html", tmp_path)
    headline = page.locator("#headline")
    assert headline.is_visible()
    assert headline.inner_text().startswith("Median overall survival: resection")
    for element in ("#flow", "#table1", "#balance", "#survival", "#effects", "#power"):
        assert page.locator(element).is_visible(), element
    images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.naturalHeight])")
    assert [alt for alt, _, _ in images] == ["Love plot", "Propensity score overlap", "Kaplan-Meier curves"]
    assert all(width > 300 and height > 200 for _, width, height in images)
    assert "not evidence that the treatments are equivalent" in page.locator("#power").inner_text()


def test_index_lists_every_analysis_and_the_forest_plot(browser, demo, tmp_path):
    page = open_page(browser, demo / "report.html", tmp_path)
    assert page.locator("#analyses a").count() == len(analyses())
    assert page.locator("img[alt='Forest plot']").is_visible()
    link = page.locator("#analyses a", has_text="asymptomatic_high_burden")
    link.click()
    assert page.locator("#headline").is_visible()
