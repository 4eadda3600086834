"""End to end: `streamlit run` serves the board, headless Chromium (Debian's `chromium`, driven by Playwright) opens
each page, waits for its title, table and chart, saves a screenshot, downloads the records and types bad input."""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from test_board import campaign_storage  # noqa: F401 (the real campaign the Campaigns page shows)

from flexpredict.board import server_command
from flexpredict.catalogs import default_model_dir

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# a Vega-Lite chart with marks drawn (a one-point line is a hidden path: wait for a visible one)
VEGA = "[data-testid=stVegaLiteChart] svg.marks .role-mark path:visible"
WATERFALL = "[data-testid=stImage] img"  # the SHAP waterfall (matplotlib)
PAGES = {
    "dataset": ("Dataset", VEGA),
    "predict": ("Predict", WATERFALL),
    "recommend": ("Recommend", VEGA),
    "campaigns": ("Campaigns", VEGA),
}
WAIT_MS = 45_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does when apt is reachable)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def board(campaign_storage, tmp_path_factory):  # noqa: F811
    """The board's URL, served by `streamlit run` exactly as `flexpredict board` starts it."""
    port = free_port()
    argv, env = server_command(port, default_model_dir(), campaign_storage)
    log = tmp_path_factory.mktemp("board") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the board did not start: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra has it)")
    with sync_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def tab(browser, board):
    """One browser tab on the board for the module: pages are switched in the sidebar, in one Streamlit session."""
    page = browser.new_page(viewport={"width": 1400, "height": 2000}, accept_downloads=True)
    page.goto(board)
    yield page
    page.close()


def rendered(tab, name: str) -> None:
    """Switch to a page in the sidebar and wait for what it must show: its title, a table and a drawn chart."""
    title, chart = PAGES[name]
    tab.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()
    tab.get_by_role("heading", name=title, level=1).wait_for(timeout=WAIT_MS)
    tab.locator("[data-testid=stDataFrame]").first.wait_for(timeout=WAIT_MS)
    tab.locator(chart).first.wait_for(timeout=WAIT_MS)
    assert tab.locator("[data-testid=stException]").count() == 0


def test_every_page_renders_its_title_table_and_chart(tab, tmp_path):
    for name in PAGES:
        rendered(tab, name)
        tab.wait_for_timeout(500)  # let the charts finish their first layout
        tab.screenshot(path=str(tmp_path / f"board-{name}.png"))
        assert (tmp_path / f"board-{name}.png").stat().st_size > 20_000


def test_dataset_download_is_the_filtered_table_with_its_sources(tab):
    rendered(tab, "dataset")
    with tab.expect_download(timeout=WAIT_MS) as download:
        tab.get_by_test_id("stDownloadButton").get_by_role("button").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    shown = tab.get_by_test_id("stCaptionContainer").first.inner_text()
    assert f"{len(rows):,} of" in shown and rows[0]["source"] and list(rows[0])[0] == "source"


def test_a_new_budget_redraws_the_ranking_and_chart(tab):
    """Each new budget typed in the form reaches the page's header and chart (speed is measured, not asserted: a
    timed test on a shared 2-core machine is a flaky test; docs/board.md quotes the measurement)."""
    rendered(tab, "recommend")
    budget = tab.get_by_label("Budget (USD)")
    for amount in (3000, 4000, 5000):
        budget.fill(str(amount))
        started = time.perf_counter()
        budget.press("Enter")
        tab.get_by_text(f"${amount:,}/month").wait_for(timeout=WAIT_MS)
        tab.locator(VEGA).first.wait_for(timeout=WAIT_MS)
        print(f"recommend answered a ${amount:,} budget in {time.perf_counter() - started:.2f} s")


def test_a_negative_budget_is_an_inline_message(tab):
    rendered(tab, "recommend")
    budget = tab.get_by_label("Budget (USD)")
    budget.fill("-100")
    budget.press("Enter")
    alert = tab.get_by_test_id("stAlertContentError")
    alert.wait_for(timeout=WAIT_MS)
    assert "budget: expected a finite positive number, got -100" in alert.inner_text()
    assert tab.locator("[data-testid=stException]").count() == 0


def test_an_unusable_model_file_is_an_inline_message(tab, tmp_path):
    rendered(tab, "predict")
    broken = tmp_path / "config.json"
    broken.write_text("{not json")
    tab.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(broken))
    alert = tab.get_by_test_id("stAlertContentError")
    alert.wait_for(timeout=WAIT_MS)
    assert "config.json: not valid JSON" in alert.inner_text()
    assert tab.locator("[data-testid=stException]").count() == 0
