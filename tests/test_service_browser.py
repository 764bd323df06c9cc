"""The console in a real browser: Playwright drives Debian's Chromium against the service on
loopback. Log in with a token, approve a review with a correction, roll back a memory, freeze
an agent and watch the gate's answer change; every page fits a phone's width and runs under the
service's Content-Security-Policy without a console error.

Run as a script to refresh the README's screenshots from a demo home::

    AGENTOPS_HOME=/tmp/agentops agentops demo
    python -m tests.test_service_browser /tmp/agentops docs/screenshots
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from agentops_assets.governance.ledger import AuditLedger
from agentops_assets.governance.review import reviews
from agentops_assets.storage.config import Paths
from memory import TABLE_NAME, MemoryStore
from tests.service_server import bearer, private_home, role_tokens, running_service
from tests.test_service_console import (
    FINANCE,
    REFUND_REVIEW,
    ROGUE_EVENT,
    SUPPORT,
    build_home,
)

CHROMIUM = "/usr/bin/chromium"
WIDE, NARROW = 1280, 390
PAGES = ("fleet", "reviews", "agent", "trace", "budgets", "drift")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_home(tmp_path_factory.mktemp("template") / "home").home


@pytest.fixture
def home(template_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    return private_home(template_home, tmp_path / "home", monkeypatch)


@pytest.fixture
def served(home: Paths) -> Iterator[tuple[str, dict[str, str]]]:
    with running_service(home) as url:
        yield url, role_tokens(home)


class Console:
    """One browser tab on the console, with every console error and page error it saw."""

    def __init__(self, browser: Browser, url: str, *, width: int = WIDE) -> None:
        self.url = url
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def log_in(self, token: str, *, path: str = "/") -> None:
        """Open ``path``, get sent to the login page, log in and land back on ``path``."""
        self.page.goto(self.url + path)
        expect(self.page).to_have_url(re.compile(r"/login\?next="))
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        expect(self.page).to_have_url(self.url + path)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser: Browser, served: tuple[str, dict[str, str]]) -> Iterator[Console]:
    url, tokens = served
    tab = Console(browser, url)
    tab.log_in(tokens["approver"], path="/reviews")
    yield tab
    tab.close()
    assert tab.errors == []  # no CSP violation, no missing asset, no script error


def test_a_wrong_token_stays_on_the_login_page_with_a_message(
    browser: Browser, served: tuple[str, dict[str, str]]
) -> None:
    url, _ = served
    tab = Console(browser, url)
    tab.page.goto(url + "/")
    tab.page.fill("#token", "agops_not-a-token")
    tab.page.click("button[type=submit]")
    expect(tab.page.locator(".msg.error")).to_contain_text("unknown or revoked")
    tab.close()


def test_approve_a_review_with_a_correction_and_see_it_in_ledger_and_memory(
    home: Paths, console: Console
) -> None:
    page = console.page
    item = page.locator(f"article#{REFUND_REVIEW}")
    item.locator("summary", has_text="Decide").click()
    item.locator("textarea[name=rationale]").fill("Order checked with the customer.")
    item.locator("textarea[name=correction]").fill("Ask finance before refunds above 500 USD.")
    item.locator("input[name=lesson_key]").fill("refunds.ask_finance")
    item.get_by_role("button", name="Approve").click()
    notice = page.locator(".msg.ok")
    expect(notice).to_contain_text(f"{REFUND_REVIEW} is approved")
    expect(notice).to_contain_text("The lesson refunds.ask_finance is in the memory of support-1")
    # The ledger and memory, as the trace page shows them...
    notice.get_by_role("link", name="see the trace").click()
    expect(page.locator("h1")).to_contain_text("Trace")
    ledger = page.locator("section", has=page.locator("h2", has_text="Audit ledger entries"))
    expect(ledger).to_contain_text("approval")
    expect(page.locator("section", has_text="Memory commits that followed")).to_contain_text(
        f"Lesson from review {REFUND_REVIEW}"
    )
    # ...and as the tables hold them.
    approval = AuditLedger(home).entries(REFUND_REVIEW, kind="approval")
    payload = orjson.loads(approval["payload"][0])
    assert payload["correction"] == "Ask finance before refunds above 500 USD."
    assert approval["actor"][0].startswith("approver-")
    facts = {f.fact_id: f.content for f in MemoryStore(home.table_uri(TABLE_NAME)).as_of(SUPPORT)}
    assert facts["refunds.ask_finance"] == "Ask finance before refunds above 500 USD."
    item = reviews(home).filter(pl.col("review_id") == REFUND_REVIEW).row(0, named=True)
    assert item["state"] == "approved"


def test_roll_back_a_memory_from_the_agent_page(home: Paths, console: Console) -> None:
    store = MemoryStore(home.table_uri(TABLE_NAME))
    first = store.log(SUPPORT)[-1].version
    page = console.page
    page.goto(f"{console.url}/agents/{SUPPORT}")
    page.locator("summary", has_text=f"roll back to v{first}").click()
    page.fill(f"#rb-{first}", "the wrong refund lesson")
    page.get_by_role("button", name="Roll back").click()
    expect(page.locator(".msg.ok")).to_contain_text("Memory rolled back as v")
    expect(page.locator("#memory")).to_contain_text("the wrong refund lesson")
    facts = {f.fact_id: f.content for f in store.as_of(SUPPORT)}
    assert facts["refunds.limit"] == "Refunds above 500 USD need a second look."
    rollback = AuditLedger(home).entries(kind="memory_rollback")
    assert rollback.height == 1 and rollback["actor"][0].startswith("approver-")


def test_a_memory_diff_opens_in_place_through_htmx(home: Paths, console: Console) -> None:
    page = console.page
    page.goto(f"{console.url}/agents/{SUPPORT}")
    newest = MemoryStore(home.table_uri(TABLE_NAME)).log(SUPPORT, limit=1)[0].version
    page.locator(f'a[hx-get$="/memory/{newest}"]').click()
    diff = page.locator(f"#diff-{newest}")
    expect(diff).to_contain_text("Refunds are always fine.")
    assert page.url == f"{console.url}/agents/{SUPPORT}"  # swapped in, no navigation


def test_freeze_an_agent_and_the_gate_says_frozen(
    served: tuple[str, dict[str, str]], console: Console
) -> None:
    url, tokens = served

    def gate_state() -> str:
        reply = httpx.get(f"{url}/v1/agents/{FINANCE}/state", headers=bearer(tokens["viewer"]))
        assert reply.status_code == 200, reply.text
        return reply.json()["state"]

    assert gate_state() == "normal"
    page = console.page
    page.goto(f"{console.url}/agents/{FINANCE}")
    page.select_option("#state", "frozen")
    page.fill("#reason-set", "investigating the ledger queries")
    page.get_by_role("button", name="Set state").click()
    expect(page.locator(".msg.ok")).to_contain_text("State is now frozen")
    assert gate_state() == "frozen"
    page.fill("#reason-release", "queries were fine")
    page.get_by_role("button", name="Release").click()
    expect(page.locator(".msg.ok")).to_contain_text("State is now normal")
    assert gate_state() == "normal"


def test_every_page_fits_a_phone_and_a_desktop(
    browser: Browser, served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, tokens = served
    for width in (NARROW, WIDE):
        tab = Console(browser, url, width=width)
        tab.log_in(tokens["viewer"])
        shots = screenshot_pages(tab.page, url, tmp_path / str(width), SUPPORT, ROGUE_EVENT)
        assert sorted(p.name for p in shots) == sorted(f"console_{n}.png" for n in PAGES)
        for name in PAGES:
            tab.page.goto(_page_url(url, name, SUPPORT, ROGUE_EVENT))
            overflow = tab.page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{name} is {overflow} px wide at {width} px"
        tab.close()
        assert tab.errors == []


def _page_url(url: str, name: str, agent: str, trace: str) -> str:
    return (
        url
        + {
            "fleet": "/",
            "reviews": "/reviews",
            "agent": f"/agents/{agent}",
            "trace": f"/traces/{trace}",
            "budgets": "/budgets",
            "drift": "/drift",
        }[name]
    )


def screenshot_pages(
    page: Page, url: str, folder: Path, agent: str, trace: str, *, max_height: int = 2000
) -> list[Path]:
    """A screenshot of each main page, ``console_<page>.png``, cut at ``max_height`` pixels
    (the agent page at half as much again, to show its memory log); on the review page the
    first item's decision form is open, on the agent page the newest memory diff."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PAGES:
        page.goto(_page_url(url, name, agent, trace))
        if name == "reviews" and page.locator("summary.decide").count():
            page.locator("summary.decide").first.click()
        if name == "agent" and page.locator("a[hx-get]").count():
            page.locator("a[hx-get]").first.click()  # a memory diff, loaded in place
            expect(page.locator(".diff-row .small").first).to_be_visible()
        width = page.viewport_size["width"] if page.viewport_size else WIDE
        limit = max_height * 3 // 2 if name == "agent" else max_height
        height = min(limit, page.evaluate("document.documentElement.scrollHeight"))
        path = folder / f"console_{name}.png"
        page.screenshot(
            path=path, full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
        )
        written.append(path)
    return written


def _main(home: str, folder: str, agent: str | None = None, trace: str | None = None) -> None:
    """Screenshots of a home's console (e.g. a demo home) at 1280 px, for the README."""
    paths = Paths.from_env(home)
    with running_service(paths) as url, sync_playwright() as playwright:
        tokens = role_tokens(paths)
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = Console(launched, url)
        tab.log_in(tokens["approver"])
        agent = agent or _busiest_agent(paths)
        trace = trace or _flagged_trace(paths, agent)
        for path in screenshot_pages(tab.page, url, Path(folder), agent, trace):
            print(path)
        launched.close()
        if tab.errors:
            raise SystemExit(f"console errors: {tab.errors}")


def _busiest_agent(paths: Paths) -> str:
    """An agent with pending reviews, for a screenshot that shows something."""
    pending = reviews(paths, "pending")
    return str(pending["agent_id"].mode().sort()[0])


def _flagged_trace(paths: Paths, agent: str) -> str:
    pending = reviews(paths, "pending").filter(pl.col("agent_id") == agent)
    return str(pending.sort("zone", descending=False)["trace_id"][0])


if __name__ == "__main__":
    _main(*sys.argv[1:])
