"""The web page in headless Chromium (Debian's package, driven by Playwright).

``make test`` installs Chromium with apt-get; the test skips only when it is absent.
Playwright's own browser download is never used (no ``playwright install``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from flipkd.serve.app import create_app
from flipkd.serve.faq import FaqEntry
from flipkd.serve.index import FaqIndex
from flipkd.serve.server import background_server
from test_serve_fake import FAQ_ROWS, ContraryMatcher, FakeMatcher

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-token"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="chromium is not installed; `make test` installs it (apt-get install chromium)",
)


def _note_console_error(msg, problems: list[str]) -> None:
    """Record console errors except the expected 401 of the no-token search."""
    if msg.type == "error" and "401" not in msg.text:
        problems.append(f"console: {msg.text}")


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module (Playwright's sync API allows one at a time)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _serve_page(browser, fake: FakeMatcher):
    """A page on a server for ``fake``, with the problems it logs."""
    index = FaqIndex.build([FaqEntry(*r) for r in FAQ_ROWS], fake.encode)
    app = create_app(fake, index, token=TOKEN)
    problems: list[str] = []
    with background_server(app) as server:
        page = browser.new_page()
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("console", lambda msg: _note_console_error(msg, problems))
        page.set_default_timeout(10_000)
        page.goto(f"{server.url}/")
        yield page, problems
        page.close()


@pytest.fixture(scope="module")
def browser_page(chromium):
    yield from _serve_page(chromium, FakeMatcher())


@pytest.fixture(scope="module")
def contrary_page(chromium):
    """A server whose generated label ranks against the cosine."""
    yield from _serve_page(chromium, ContraryMatcher())


def test_search_needs_the_token_then_shows_top_k(browser_page):
    page, problems = browser_page
    page.fill("#query", "reset password")
    page.click("#search-button")
    expect(page.locator("#search-status")).to_contain_text("401")
    page.fill("#token", TOKEN)
    page.fill("#k", "3")
    page.click("#search-button")
    rows = page.locator("#results tbody tr.result")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("How do I reset my password?")
    scores = [float(s) for s in page.locator("#results td.score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    expect(page.locator("#search-status")).to_have_text("3 result(s)")
    assert not problems, problems


def test_rerank_with_a_label_weight(contrary_page):
    """Re-ranking from the page sends the label weight: 1 orders by the label (here against
    the cosine), 0 gives the cosine order back."""
    page, problems = contrary_page
    page.fill("#token", TOKEN)
    page.fill("#query", "cancel order refund")
    page.fill("#k", "4")
    page.uncheck("#rerank")
    page.click("#search-button")
    expect(page.locator("#search-status")).to_have_text("4 result(s)")
    by_cosine = page.locator("#results tbody tr.result td:nth-child(2)").all_inner_texts()
    page.check("#rerank")
    page.fill("#rerank-weight", "0")
    page.click("#search-button")
    expect(page.locator("#search-status")).to_have_text("4 result(s), re-ranked")
    assert page.locator("#results tbody tr.result td:nth-child(2)").all_inner_texts() == by_cosine
    page.fill("#rerank-weight", "1")
    page.click("#search-button")
    expect(page.locator("#search-status")).to_have_text("4 result(s), re-ranked")
    by_label = page.locator("#results tbody tr.result td:nth-child(2)").all_inner_texts()
    assert by_label != by_cosine
    scores = [float(s) for s in page.locator("#results td.score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    page.uncheck("#rerank")
    assert not problems, problems


def test_pair_form_shows_score_and_label(browser_page):
    page, problems = browser_page
    page.fill("#token", TOKEN)
    page.fill("#text-a", "How do I reset my password?")
    page.fill("#text-b", "reset my password please")
    page.select_option("#mode", "rep")
    page.click("#match-button")
    expect(page.locator("#match-result")).to_be_visible()
    expect(page.locator("#match-score")).to_have_text(re.compile(r"^-?[01]\.\d{3}$"))
    expect(page.locator("#match-label")).to_have_text("match")
    expect(page.locator("#match-threshold")).to_have_text("0.40")
    page.fill("#text-b", "Which credit cards do you accept?")
    page.select_option("#mode", "gen")
    page.click("#match-button")
    expect(page.locator("#match-label")).to_have_text("no match")
    assert not problems, problems
