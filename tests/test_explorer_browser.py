"""The explorer in a real browser (issue 17): Debian's headless Chromium through chromium-driver and
selenium, against a real dev node process with the whole attribution story applied. Every page
renders without console errors, search finds every kind, a new block appears without reload, the
contribution page shows the inference that paid it. Screenshots go to tests/artifacts/explorer/
(gitignored)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from explorer_kit import HOSTILE, ROOT, Story, apply_story, dev_node

pytestmark = pytest.mark.multinode

ARTIFACTS = ROOT / "tests" / "artifacts" / "explorer"
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    tmp = tmp_path_factory.mktemp("explorer")
    with dev_node(tmp, moniker=HOSTILE["moniker"]) as url:
        yield apply_story(url, tmp / "node")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM and DRIVER, "chromium and chromium-driver are installed by .ci/bootstrap"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="explorer-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def open_page(driver: Any, url: str, route: str, shot: str) -> str:
    """Load ``route``, wait until the page finished rendering, check the console, save a screenshot;
    returns the main element's text."""
    driver.get(url + "/#/" + route)
    driver.refresh()  # a hash change alone would not reload the module: every page starts fresh
    wait(lambda: driver.execute_script(
        "const m = document.getElementById('main'); return m.getAttribute('aria-busy') === 'false' && m.dataset.page;"),
        20, f"page {route} to render")
    text = driver.find_element("id", "main").text
    driver.save_screenshot(str(ARTIFACTS / f"{shot}.png"))
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, f"console errors on {route}: {errors}"
    assert "Not available" not in text, f"{route}: {text[:500]}"
    return text


def test_explorer_served_on_the_rpc_port_and_json_rpc_stays_on_post(story: Story) -> None:
    page = httpx.get(story.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert b'src="/explorer/app.js"' in page.content
    for asset in ("/explorer/app.js", "/explorer/vendor/uPlot.esm.js", "/explorer/style.css"):
        assert httpx.get(story.url + asset).status_code == 200, asset
    rpc = httpx.post(story.url + "/", json={"jsonrpc": "2.0", "id": 1, "method": "health", "params": {}}).json()
    assert rpc["result"] == {}
    assert httpx.get(story.url + "/explorer/../../etc/passwd").status_code == 404


def test_every_page_renders_without_console_errors(story: Story, browser: Any) -> None:
    ids = story.ids
    pages = {
        "chain": ("", ["Latest blocks", "Latest transactions"]),
        "validators": ("validators", ["Validators", "uptime"]),
        "block": (f"block/{ids['height']}", [f"Block {ids['height']}"]),
        "tx": (f"tx/{ids['inf_agent']}", ["applied", "infer"]),
        "datanet": (f"datanet/{ids['datanet']}", ["Datanet corpus", "Contributions by status", "accepted (1)",
                                                 "rejected (1)", "Earnings over time", "base"]),
        "contribution": (f"contribution/{ids['c_alice']}", ["accepted", "Inferences that paid it (2)",
                                                           "claim_rewards --contribution " + ids["c_alice"]]),
        "model": (f"model/{ids['tuned']}", ["Model tuned", "Datanet mix", "Lineage", "How its fees split",
                                           "Inferences (1)"]),
        "adapter": (f"adapter/{ids['adapter']}", ["Adapter lora"]),
        "inference": (f"inference/{ids['inf_agent']}", ["Receipt", "matched contribution"]),
        "address": (f"address/{ids['alice']}", ["balance", "Earnings by role", "Contributions (1)",
                                               "Receipts that paid this address (2)"]),
        "agent": (f"agent/{ids['agent']}", ["Agent helper", "Actions and outcomes", "Inferences it paid for (1)",
                                          ids["action"][:8]]),
    }
    for shot, (route, expected) in pages.items():
        text = open_page(browser, story.url, route, shot)
        for want in expected:
            assert want in text, f"{shot}: {want!r} not in {text[:800]!r}"
    # charts are drawn (uPlot canvases), the lineage graph names the parent and the adapter
    open_page(browser, story.url, f"datanet/{ids['datanet']}", "datanet")
    assert browser.find_elements("css selector", "#chart canvas")
    open_page(browser, story.url, f"model/{ids['tuned']}", "model")
    graph = browser.find_element("css selector", "svg.lineage").get_attribute("innerHTML")
    assert "base" in graph and "lora (adapter)" in graph


def test_contribution_page_shows_the_inferences_that_paid_it(story: Story, browser: Any) -> None:
    ids = story.ids
    open_page(browser, story.url, f"contribution/{ids['c_alice']}", "contribution")
    quoted = story.quote[len("As the corpus puts it: "):-len(". Hope that helps.")]
    assert quoted in browser.find_element("id", "content").text  # the contribution's own text
    links = {a.get_attribute("title") for a in browser.find_elements("css selector", "main a.hash")}
    assert ids["inf_agent"] in links and ids["inf_user"] in links
    receipt = httpx.post(story.url, json={"jsonrpc": "2.0", "id": 1, "method": "attribution",
                                          "params": {"inference": ids["inf_agent"]}}).json()["result"]["receipts"][0]
    paid = [m["amount"] for m in receipt["matched"] if m["contribution"] == ids["c_alice"]]
    assert paid and f"{paid[0]:,} tokens" in browser.find_element("id", "main").text
    # the matched spans of the paying outputs are highlighted, and what is marked is the quote
    marked = [m.text for m in browser.find_elements("css selector", "main mark")]
    assert marked and all(m and m in quoted for m in marked), f"highlighted: {marked}"
    open_page(browser, story.url, f"inference/{ids['inf_agent']}", "inference")
    marked = [m.text for m in browser.find_elements("css selector", "main mark")]
    assert marked and all(m and m in quoted for m in marked), f"highlighted on the inference page: {marked}"


def test_search_finds_every_kind(story: Story, browser: Any) -> None:
    ids = story.ids
    cases = {
        ids["height"]: "block", ids["alice"]: "address", ids["claim"]: "transaction", ids["datanet"]: "datanet",
        ids["c_alice"]: "contribution", ids["tuned"]: "model", ids["adapter"]: "adapter",
        ids["inf_user"]: "inference", ids["agent"]: "agent",
    }
    for query, kind in cases.items():
        open_page(browser, story.url, "", "search")
        box = browser.find_element("id", "q")
        box.clear()
        box.send_keys(query)
        box.submit()
        wait(lambda: kind in browser.find_element("id", "main").text.lower()
             and browser.execute_script("return location.hash").count("/") >= 1
             and browser.find_element("id", "main").get_attribute("aria-busy") == "false",
             20, f"search {query} to find its {kind}")
        text = browser.find_element("id", "main").text.lower()
        assert kind in text, f"search {query}: {text[:300]}"
        assert "nothing matches" not in text
    open_page(browser, story.url, "search?q=0x" + "ab" * 32, "search-empty")
    assert "Nothing matches" in browser.find_element("id", "main").text


def test_a_new_block_appears_without_reload(story: Story, browser: Any) -> None:
    open_page(browser, story.url, "", "chain")
    browser.execute_script("window.__marker = 1")  # gone if the page reloads
    first = int(browser.find_element("css selector", "#blocks tr").get_attribute("data-height"))
    wait(lambda: int(browser.find_element("css selector", "#blocks tr").get_attribute("data-height")) > first,
         30, "a new block row")
    assert browser.execute_script("return window.__marker") == 1
    assert "live" in browser.find_element("id", "live").text
    browser.save_screenshot(str(ARTIFACTS / "chain-live.png"))


def test_explorer_off_with_one_switch(tmp_path: Path) -> None:
    with dev_node(tmp_path, explorer=False) as url:
        assert httpx.get(url + "/").status_code == 405
        assert httpx.get(url + "/explorer/app.js").status_code == 404
        assert httpx.post(url + "/", json={"jsonrpc": "2.0", "id": 1, "method": "health"}).json()["result"] == {}


def test_hostile_names_render_as_text(story: Story, browser: Any) -> None:
    """Names chosen by users (node moniker, validator moniker, datanet name and metadata, model, adapter
    and agent names) are shown as their literal text: no element is made from them, no script runs."""
    ids = story.ids
    pages = {
        "": ["moniker"], "validators": ["validator"], f"datanet/{ids['h_datanet']}": ["datanet", "metadata", "model"],
        f"model/{ids['h_model']}": ["model", "datanet"], f"adapter/{ids['h_adapter']}": ["adapter"],
        f"agent/{ids['h_agent']}": ["agent"], f"contribution/{ids['h_contribution']}": ["contribution"],
    }
    for route, names in pages.items():
        text = open_page(browser, story.url, route, "hostile-" + (route.split("/")[0] or "chain"))
        for name in names:
            assert HOSTILE[name] in text, f"{route}: {HOSTILE[name]!r} not shown as text in {text[:600]!r}"
        made = browser.execute_script(
            "return [...document.querySelectorAll('img, script:not([src]), iframe, b, [onload], [onerror], "
            "[onmouseover]')].map((e) => e.outerHTML)")
        assert made == [], f"{route}: markup made from a name: {made}"
        assert browser.execute_script("return window.__xss === undefined"), f"{route}: a hostile name ran"
    # the lineage graph (SVG) holds the adapter's name as text too
    open_page(browser, story.url, f"model/{ids['h_model']}", "hostile-lineage")
    labels = [t.get_attribute("textContent") for t in browser.find_elements("css selector", "svg.lineage text")]
    assert any(label.startswith(HOSTILE["adapter"][:20]) for label in labels), labels


def test_readable_at_phone_width(story: Story, browser: Any) -> None:
    """At 390 px the pages don't scroll sideways (wide tables scroll inside their own box)."""
    ids = story.ids
    browser.set_window_size(390, 844)
    try:
        for route in ("", "validators", f"block/{ids['height']}", f"datanet/{ids['datanet']}",
                      f"contribution/{ids['c_alice']}", f"model/{ids['tuned']}", f"address/{ids['alice']}",
                      f"agent/{ids['agent']}"):
            open_page(browser, story.url, route, "phone-" + (route.split("/")[0] or "chain"))
            width, inner = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]")
            assert width <= inner, f"{route or 'chain'}: page is {width} px wide at a {inner} px viewport"
    finally:
        browser.set_window_size(1280, 1000)
