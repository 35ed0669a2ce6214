"""The dashboard at /ui in a real headless browser: Debian's Chromium (/usr/bin/chromium)
driven by Playwright for Python. It asks for the master key, shows the seeded ledger's
figures (total, chart bars, budgets left, breakers, failed attempts) and refreshes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests._gateway import MASTER, PLACEHOLDER_KEY, Running, serve

CHROMIUM = os.environ.get("LLAMAROUTE_CHROMIUM", "/usr/bin/chromium")
if not os.path.exists(CHROMIUM):
    if os.environ.get("LLAMAROUTE_REQUIRE_BROWSER"):  # .ci/run: a browser must be there
        pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)", pytrace=False)
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

from llamaroute.providers import OpenRouterProvider  # noqa: E402
from llamaroute.testing import FakeOpenRouter, Step  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Running, str]]:
    with FakeOpenRouter(Step.error(500), default=Step.reply("Hi")) as fake:
        provider = OpenRouterProvider(api_key=PLACEHOLDER_KEY, base_url=fake.base_url)
        with serve([provider], tmp_path / "gw.sqlite3", client_options={"retries": 0}) as gw:
            store = gw.store()
            alpha, _ = store.create_key("alpha", budget=Decimal("5"))
            beta, _ = store.create_key("beta")
            now = datetime.now(UTC)
            for days_ago, key, model, cost in (
                (2, alpha.id, "llama-3.2-3b", "1.25"),
                (1, alpha.id, "llama-3.2-1b", "0.5"),
                (0, beta.id, "llama-3.2-3b", "2"),
            ):
                at = (now - timedelta(days=days_ago)).timestamp()
                store.settle(
                    key,
                    None,
                    Decimal(cost),
                    user=None,
                    tags=(),
                    provider="openrouter",
                    model=model,
                    input_tokens=1,
                    output_tokens=1,
                    status="ok",
                    now=at,
                )
            store.close()
            failed = httpx.post(
                f"{gw.base_url}/chat/completions",
                headers={"Authorization": f"Bearer {MASTER}"},
                json={"model": "llama-3.2-3b", "messages": [{"role": "user", "content": "Hi"}]},
            )
            assert failed.status_code >= 500
            yield gw, beta.id


def test_the_dashboard_shows_the_seeded_figures_and_refreshes(seeded: tuple[Running, str]) -> None:
    gateway, beta = seeded
    assert httpx.get(f"{gateway.url}/ui/data").status_code == 401
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{gateway.url}/ui?refresh=1")
            assert page.locator("#board").is_hidden()
            page.fill("#key", "wrong")
            page.click("#go")
            expect = sync_api.expect
            expect(page.locator("#err")).to_contain_text("401")
            page.fill("#key", MASTER)
            page.click("#go")
            expect(page.locator("#board")).to_be_visible()
            assert page.text_content("#total") == "3.75"
            costs = page.eval_on_selector_all(
                "#chart rect", "rs => rs.map(r => [r.dataset.name, r.dataset.cost])"
            )
            assert sorted(costs) == [["alpha", "0.5"], ["alpha", "1.25"], ["beta", "2"]]
            page.select_option("#by", "model")
            names = page.eval_on_selector_all("#chart rect", "rs => rs.map(r => r.dataset.name)")
            assert sorted(set(names)) == ["llama-3.2-1b", "llama-3.2-3b"]
            rows = page.eval_on_selector_all(
                "#keys tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
            )
            assert rows[0][1:5] == ["alpha", "5", "1.75", "3.25"]
            breakers = page.text_content("#breakers")
            assert "openrouter:meta-llama/llama-3.2-3b-instruct" in (breakers or "")
            failures = page.text_content("#failures tbody") or ""
            assert "ServerError" in failures
            before = int(page.text_content("#refreshes") or 0)
            store = gateway.store()
            store.settle(
                beta,
                None,
                Decimal("1"),
                user=None,
                tags=(),
                provider="openrouter",
                model="llama-3.2-3b",
                input_tokens=1,
                output_tokens=1,
                status="ok",
            )
            store.close()
            expect(page.locator("#total")).to_have_text("4.75", timeout=15_000)
            assert int(page.text_content("#refreshes") or 0) > before
        finally:
            browser.close()
    time.sleep(0)  # the browser is gone before the gateway stops
