"""The dashboard in a real browser, over the real pipeline (pricing, projector, api).

What it shows must be what the API answers; user data (references, payloads) is shown as
text; the key never reaches a URL or a cookie; the page raises no console error (a
Content-Security-Policy violation is one).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.async_api import Browser, Page, expect

from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics
from tests.e2e.faults import ADMIN, ADMIN_TOKEN, READ_TOKEN
from tests.e2e.pipeline import Pipeline, usage
from tests.namespaces import namespace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WAIT_MS = 30_000  # only against a hang on a loaded machine; nothing asserts on durations
REFERENCE = "<script>window.__pwned = 1</script> order-7"
POISON = b'{"type": "credits.granted", "note": "<img src=x onerror=window.__pwned=2>"}'
# The browser logs every 4xx answer; these the page expects and handles (a refused key, a
# read key may not see the overview, a missing route, an invalid account id). Anything
# else is a finding.
EXPECTED_REFUSAL = re.compile(
    r"^Failed to load resource: the server responded with a status of (401|403|404|422)"
)
BAR_COLOUR = (0x34, 0x56, 0xD1)
HUGE = 2**62 - 1  # the largest grant; as a JavaScript number it would read ...904


@dataclass
class Seeded:
    settings: Settings
    pipeline: Pipeline
    account: str
    other: str
    huge: str  # its balance is past the integers a JavaScript number holds exactly
    entries: int


@pytest.fixture(scope="module")
async def seeded(
    kafka_bootstrap: str, postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Seeded]:
    async with namespace(kafka_bootstrap, postgres_server_url, "dashboard") as settings:
        pipeline = await Pipeline.start(settings, tmp_path_factory.mktemp("dashboard"))
        try:
            yield await seed(settings, pipeline)
        finally:
            await pipeline.close()


async def seed(settings: Settings, pipeline: Pipeline) -> Seeded:
    """Two accounts with a month of usage, a rejected usage event, a conflict and a ledger
    message that is not an entry."""
    account, other = f"acct-dash-{uuid4().hex[:6]}", f"acct-other-{uuid4().hex[:6]}"
    await grant(pipeline, account, 5_000_000, REFERENCE)
    await grant(pipeline, other, 1_000, "welcome")
    huge = f"acct-huge-{uuid4().hex[:6]}"
    await grant(pipeline, huge, HUGE, "enterprise")
    now = datetime.now(UTC)
    recent = [now - timedelta(hours=2 * k, minutes=5) for k in range(20)]
    older = [now - timedelta(days=3 * k + 3) for k in range(9)]
    events = [
        usage(account, "mimo-v2-pro" if k % 3 else "mimo-v2-omni", 1_000 + 10 * k, 500).model_copy(
            update={"occurred_at": at}
        )
        for k, at in enumerate(recent + older)
    ]
    first = usage(account, "mimo-v2-omni", 100, 100)
    events += [
        first,
        usage(other, "mimo-v2-pro", 2_000, 1_000),
        usage(other, "gpt-unknown", 10, 10),  # rejected by pricing
    ]
    await pipeline.publish(events)
    # The same event id with other content: the projector stores a conflict.
    await pipeline.publish([first.model_copy(update={"output_tokens": 999})])
    await send_to_ledger(settings, POISON)
    entries = 1 + len(recent) + len(older) + 1
    await pipeline.balance_when(account, entries=entries)
    await pipeline.balance_when(other, entries=2)
    await pipeline.balance_when(huge, entries=1)
    return Seeded(settings, pipeline, account, other, huge, entries)


async def grant(pipeline: Pipeline, account: str, credits: int, reference: str) -> None:
    answer = await pipeline.client.post(
        f"/v1/accounts/{account}/credits",
        json={"credits": credits, "reason": "purchase", "reference": reference},
        headers={**ADMIN, "Idempotency-Key": uuid4().hex},
    )
    assert answer.status_code == 202, answer.text


async def send_to_ledger(settings: Settings, value: bytes) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(Topics.from_settings(settings).ledger, value, key=b"poison")
    finally:
        await producer.stop()


@dataclass
class Tab:
    """A page in a fresh browser context, with what it logged and requested."""

    page: Page
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error" and not EXPECTED_REFUSAL.match(message.text):
            self.problems.append(f"console: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 500:
            self.problems.append(f"{response.status} from {response.url}")


@pytest.fixture
async def tab(browser: Browser, seeded: Seeded) -> AsyncIterator[Tab]:
    context = await browser.new_context(
        locale="en-US", timezone_id="UTC", viewport={"width": 1400, "height": 1100}
    )
    opened = Tab(await context.new_page())
    opened.watch()
    try:
        yield opened
    finally:
        await context.close()
    assert opened.problems == []


async def sign_in(tab: Tab, seeded: Seeded, key: str, account: str = "") -> Page:
    page = tab.page
    await page.goto(f"{seeded.pipeline.services.api_url}/dashboard")
    await page.fill("#key", key)
    await page.fill("#account", account)
    await page.click("#key-form button[type=submit]")
    return page


async def api(seeded: Seeded, path: str, **params: Any) -> Any:
    return await seeded.pipeline.get(path, **params)


def people(number: int) -> str:
    return f"{number:,}"


async def chart_values(page: Page, canvas: str) -> list[int]:
    values: list[int] = await page.evaluate(
        "id => { const c = Chart.getChart(id); return c ? c.data.datasets[0].data : []; }", canvas
    )
    return values


async def bar_pixels(page: Page, canvas: str) -> int:
    """Pixels of the bars' colour on the canvas: more than none once a bar is drawn."""
    counted: int = await page.evaluate(
        """([id, [r, g, b]]) => {
            const canvas = document.getElementById(id);
            const { width, height } = canvas;
            const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
            let found = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i] === r && data[i + 1] === g && data[i + 2] === b) found++;
            }
            return found;
        }""",
        [canvas, list(BAR_COLOUR)],
    )
    return counted


async def debits_since(seeded: Seeded, since: datetime) -> int:
    """Credits debited since `since`, summed from the journal's entries (not the rollups)."""
    total, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = await api(seeded, f"/v1/accounts/{seeded.account}/entries", **params)
        for entry in page["entries"]:
            if (
                entry["type"] == "credits.debited"
                and datetime.fromisoformat(entry["occurred_at"]) >= since
            ):
                total -= entry["credits"]
        if (cursor := page["next_cursor"]) is None:
            return total


async def test_a_read_key_shows_the_account_as_the_api_answers_it(
    tab: Tab, seeded: Seeded, screenshots: Path
) -> None:
    page = await sign_in(tab, seeded, READ_TOKEN, seeded.account)
    balance = await api(seeded, f"/v1/accounts/{seeded.account}/balance")
    await expect(page.locator("#balance")).to_have_text(people(balance["balance"]), timeout=WAIT_MS)
    await expect(page.locator("#status")).to_have_text(balance["status"])
    await expect(page.locator("#spent")).to_have_text(people(balance["spent"]))
    await expect(page.locator("#entry-count")).to_have_text(people(seeded.entries))
    await expect(page.locator("#updated")).to_have_text(re.compile(r"ago|now"))
    await expect(page.locator("#admin")).to_be_hidden()

    now = datetime.now(UTC)
    month = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)
    two_days = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=47)
    await charted(page, "burn-daily", await debits_since(seeded, month))
    await charted(page, "burn-hourly", await debits_since(seeded, two_days))
    assert len(await chart_values(page, "burn-daily")) == 30
    assert len(await chart_values(page, "burn-hourly")) == 48
    assert await bar_pixels(page, "burn-daily") > 0
    assert await bar_pixels(page, "burn-hourly") > 0

    models = await api(seeded, f"/v1/accounts/{seeded.account}/usage", group_by="model")
    rows = page.locator("#models tbody tr")
    await expect(rows).to_have_count(len(models["rows"]))
    for row in models["rows"]:
        line = rows.filter(has_text=row["key"])
        await expect(line.locator("td").nth(3)).to_have_text(people(row["credits"]))
    await expect(page.locator("#holds").locator("xpath=..").locator(".empty")).to_have_text(
        re.compile("No active holds|not available")
    )
    await page.screenshot(path=screenshots / "dashboard-account.png", full_page=True)

    # New usage shows by itself, without a reload.
    await seeded.pipeline.publish([usage(seeded.account, "mimo-v2-pro", 40_000, 10_000)])
    after = await seeded.pipeline.balance_when(seeded.account, entries=seeded.entries + 1)
    seeded.entries += 1
    await expect(page.locator("#balance")).to_have_text(people(after["balance"]), timeout=WAIT_MS)


async def charted(page: Page, canvas: str, credits: int) -> None:
    """Waits until the chart's bars add up to `credits` (the page refreshes by itself)."""
    deadline = asyncio.get_running_loop().time() + WAIT_MS / 1000
    while (drawn := sum(await chart_values(page, canvas))) != credits:
        assert asyncio.get_running_loop().time() < deadline, f"{canvas}: {drawn} != {credits}"
        await asyncio.sleep(0.5)


async def test_a_balance_past_2_to_the_53_and_its_holds_are_shown_exactly(
    tab: Tab, seeded: Seeded
) -> None:
    placed = await seeded.pipeline.client.post(
        f"/v1/accounts/{seeded.huge}/holds",
        json={"credits": 1_000, "ttl_seconds": 3_600},
        headers={**ADMIN, "Idempotency-Key": uuid4().hex},
    )
    assert placed.status_code == 201, placed.text
    page = await sign_in(tab, seeded, READ_TOKEN, seeded.huge)
    await expect(page.locator("#balance")).to_have_text(people(HUGE), timeout=WAIT_MS)
    await expect(page.locator("#purchased")).to_have_text("4,611,686,018,427,387,903")
    await expect(page.locator("#held")).to_have_text("1,000")
    await expect(page.locator("#available")).to_have_text(people(HUGE - 1_000))
    hold = page.locator("#holds tbody tr")
    await expect(hold).to_have_count(1)
    await expect(hold.locator("td").first).to_have_text(placed.json()["hold_id"])
    await expect(hold.locator("td").nth(2)).to_have_text("in 1 hour")


async def test_entries_page_by_cursor_and_show_references_as_text(tab: Tab, seeded: Seeded) -> None:
    page = await sign_in(tab, seeded, READ_TOKEN, seeded.account)
    rows = page.locator("#entries tbody tr")
    await expect(rows).to_have_count(25, timeout=WAIT_MS)
    first_page = await rows.first.locator("td").last.get_attribute("title")
    await page.click("#older")
    await expect(page.locator("#page-number")).to_have_text("page 2")
    await expect(rows).to_have_count(seeded.entries - 25)
    await expect(page.locator("#older")).to_be_disabled()
    # The oldest entry is the grant, whose reference is shown exactly as it was written.
    await expect(rows.last.locator("td").nth(6)).to_have_text(REFERENCE)
    assert await page.locator("#entries script").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await page.click("#newer")
    await expect(page.locator("#page-number")).to_have_text("page 1")
    await expect(rows).to_have_count(25)
    assert await rows.first.locator("td").last.get_attribute("title") == first_page


async def test_an_admin_key_shows_the_operator_view(
    tab: Tab, seeded: Seeded, screenshots: Path
) -> None:
    page = await sign_in(tab, seeded, ADMIN_TOKEN)
    admin = page.locator("#admin")
    await expect(admin).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#account-view")).to_be_hidden()
    spenders = page.locator("#top-accounts tbody tr")
    await expect(spenders).to_have_count(2)
    today = await api(seeded, f"/v1/accounts/{seeded.account}/usage", group_by="day",
                      **{"from": datetime.now(UTC).date().isoformat()})  # fmt: skip
    mine = spenders.filter(has_text=seeded.account)
    await expect(mine.locator("td").nth(1)).to_have_text(people(today["rows"][0]["credits"]))
    await expect(page.locator("#ov-accounts")).to_have_text("3")
    await expect(page.locator("#ov-conflicts")).to_have_text("1", timeout=WAIT_MS)
    await expect(page.locator("#ov-rejected-entries")).to_have_text("1")
    await expect(page.locator("#ov-rejected-usage")).to_have_text("1")
    await expect(page.locator("#rejected-usage tbody tr")).to_have_count(1)
    await expect(page.locator("#rejected-usage tbody tr td").nth(1)).to_have_text("unknown_model")
    # Caught up: the offsets of pricing's commit markers are not counted as lag.
    await expect(page.locator("#ov-pricing-lag")).to_have_text("0", timeout=WAIT_MS)
    await expect(page.locator("#ov-projector-lag")).to_have_text("0", timeout=WAIT_MS)
    await expect(page.locator("#conflicts tbody tr")).to_have_count(1)
    # The rejected message's bytes are shown as text: no element is made from them.
    payload = page.locator("#rejected tbody tr td").nth(4)
    await expect(payload).to_have_text(POISON.decode())
    assert await page.locator("#rejected img").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await page.screenshot(path=screenshots / "dashboard-admin.png", full_page=True)

    await mine.locator("button").click()
    await expect(page.locator("#account-view")).to_be_visible()
    await expect(page.locator("#account-id")).to_have_text(seeded.account)


async def test_the_key_stays_out_of_urls_cookies_and_the_page(tab: Tab, seeded: Seeded) -> None:
    page = await sign_in(tab, seeded, READ_TOKEN, seeded.account)
    await expect(page.locator("#entries tbody tr").first).to_be_visible(timeout=WAIT_MS)
    assert all(READ_TOKEN not in url for url in tab.requests)
    assert READ_TOKEN not in page.url
    assert await page.context.cookies() == []
    assert await page.evaluate("document.cookie") == ""
    assert READ_TOKEN not in await page.content()
    assert await page.evaluate("sessionStorage.getItem('ledger.dashboard.key')") == READ_TOKEN
    # A reload in the same tab keeps the key; "Forget key" removes it.
    await page.reload()
    await expect(page.locator("#account-view")).to_be_visible(timeout=WAIT_MS)
    await page.click("#forget")
    await expect(page.locator("#connect")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_an_unknown_key_is_refused_and_asked_again(tab: Tab, seeded: Seeded) -> None:
    page = await sign_in(tab, seeded, "not-a-key", seeded.account)
    await expect(page.locator("#error")).to_contain_text("401", timeout=WAIT_MS)
    await expect(page.locator("#connect")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_an_account_id_made_of_markup_is_refused_by_the_form(
    tab: Tab, seeded: Seeded
) -> None:
    page = await sign_in(tab, seeded, READ_TOKEN, "<img src=x onerror=window.__pwned=3>")
    await expect(page.locator("#connect")).to_be_visible()
    assert await page.evaluate("document.getElementById('account').validity.valid") is False
    assert [url for url in tab.requests if "/v1/" in url] == []
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.locator("main img").count() == 0


async def test_an_account_key_sees_its_own_account_only(tab: Tab, seeded: Seeded) -> None:
    made = await seeded.pipeline.client.post(
        "/v1/keys",
        json={"scope": "account", "account_id": seeded.other, "name": "dashboard"},
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    page = await sign_in(tab, seeded, secret, seeded.other)
    balance = await api(seeded, f"/v1/accounts/{seeded.other}/balance")
    await expect(page.locator("#balance")).to_have_text(people(balance["balance"]), timeout=WAIT_MS)
    await expect(page.locator("#status")).to_have_text("exhausted")
    await expect(page.locator("#entries tbody tr")).to_have_count(2)
    await expect(page.locator("#admin")).to_be_hidden()
    await expect(page.locator("#error")).to_be_hidden()
    # Another account is refused, and the page says so.
    await page.fill("#account-switch", seeded.account)
    await page.click("#account-form button[type=submit]")
    await expect(page.locator("#error")).to_contain_text("403", timeout=WAIT_MS)
    assert all(secret not in url for url in tab.requests)
