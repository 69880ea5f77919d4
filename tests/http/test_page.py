"""The web page in a real headless browser (Debian's chromium driven by Playwright, no downloaded browser).

Signs in, adds and tests a key against the fake OpenAI server, chats with a tool call that needs approval,
approves it, and reads the usage view; screenshots go to ``test-artifacts/``. The browser and the
``playwright`` package are installed by ``tests/http/install_browser.sh`` (run automatically as root).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from providers.profiles import get_profile
from providers.schema import provider_tool_name
from tests.fakes.base import FakeToolCall, FakeTurn
from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import OPENAI_KEY, SECOND_KEY, Service, base_settings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
TOOL_SERVER = ROOT / "tests" / "agent" / "tool_server.py"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _ensure_browser() -> None:
    """Install chromium and playwright when missing (as root); fail loudly otherwise, never skip."""
    if CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None:
        return
    if os.geteuid() != 0:
        pytest.fail("chromium or playwright is missing: run tests/http/install_browser.sh as root first")
    done = subprocess.run(
        ["bash", str(ROOT / "tests" / "http" / "install_browser.sh")], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        pytest.fail(f"install_browser.sh failed:\n{done.stdout}\n{done.stderr}")
    importlib.invalidate_caches()
    assert CHROMIUM.exists()
    assert importlib.util.find_spec("playwright") is not None


@pytest.fixture(scope="module")
def page_service(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAIServer, captured_logs: Any
) -> Iterator[tuple[Service, str]]:
    tool_log = tmp_path_factory.mktemp("page-tools") / "calls.jsonl"
    svc = Service(tmp_path_factory.mktemp("page"), base_settings(fake_openai)).start()
    with svc.admin() as admin:
        entry = {"command": sys.executable, "args": [str(TOOL_SERVER)], "env": {"AGENT_TOOL_LOG": str(tool_log)}}
        assert admin.put("/api/admin/mcp-servers/t", json=entry).status_code == 200
    _, token = svc.new_user("browser-user")
    try:
        yield svc, token
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _ensure_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def test_sign_in_add_key_chat_with_approval_and_usage(
    page_service: tuple[Service, str], browser: Any, fake_openai: FakeOpenAIServer
) -> None:
    from playwright.sync_api import expect

    service, token = page_service
    fake_openai.reset()
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    try:
        page.goto(service.url + "/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("API token").fill("rk_wrong-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#status")).to_contain_text("not accepted")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Provider keys")).to_be_visible()

        # add a key and test it against the fake provider
        page.get_by_label("Provider", exact=True).select_option("openai")
        page.get_by_label("API key", exact=True).fill(OPENAI_KEY)
        page.get_by_label("Label", exact=False).first.fill("Fake OpenAI")
        page.get_by_label("Base URL").fill(fake_openai.origin + "/v1")
        page.get_by_label("Default model").fill("fake-model-1")
        page.get_by_role("button", name="Add key").click()
        card = page.locator("#config-list li").first
        expect(card).to_contain_text("****" + OPENAI_KEY[-4:])
        expect(card).to_contain_text("default")
        assert page.get_by_label("API key", exact=True).input_value() == ""
        assert OPENAI_KEY not in page.content()
        page.get_by_role("button", name="Test Fake OpenAI").click()
        expect(card.locator(".check-result")).to_contain_text("Key works")

        # a second key: make it the default, then the first again, then delete the second
        expect(page.get_by_label("Provider", exact=True)).to_have_value("openai")  # kept after adding
        page.get_by_label("API key", exact=True).fill(SECOND_KEY)
        page.get_by_label("Label", exact=False).first.fill("Second")
        page.get_by_label("Base URL").fill(fake_openai.origin + "/v1")
        page.get_by_role("button", name="Add key").click()
        second = page.locator("#config-list li", has_text="Second")
        expect(second).to_contain_text("****" + SECOND_KEY[-4:])
        page.get_by_role("button", name="Make Second the default").click()
        expect(second.locator(".badge")).to_have_text("default")
        expect(card.locator(".badge")).to_have_count(0)
        page.get_by_role("button", name="Make Fake OpenAI the default").click()
        expect(card.locator(".badge")).to_have_text("default")
        page.screenshot(path=str(ARTIFACTS / "page-keys.png"), full_page=True)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete Second").click()
        expect(page.locator("#config-list li")).to_have_count(1)
        assert SECOND_KEY not in page.content()

        # every form control has an accessible name
        unnamed = page.evaluate(
            """[...document.querySelectorAll('input, select, textarea, button')]
                 .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                                && !(e.textContent || '').trim())
                 .map((e) => e.id || e.outerHTML)"""
        )
        assert unnamed == []

        # chat with a tool call that needs approval
        fake_openai.turns.append(
            FakeTurn(
                tool_calls=[
                    FakeToolCall(
                        provider_tool_name("t.delete_item", get_profile("openai").tool_names), {"name": "notes.txt"}
                    )
                ]
            )
        )
        fake_openai.turns.append(FakeTurn(text="I deleted notes.txt for you."))
        page.get_by_role("button", name="Chat").click()
        expect(page.locator("#chat-model")).to_have_value("fake-model-1")
        page.get_by_label("t (catalogue)").check()
        page.get_by_label("Message", exact=True).fill("Please delete notes.txt")
        page.get_by_role("button", name="Send").click()
        approve = page.get_by_role("button", name="Approve")
        expect(approve).to_be_visible(timeout=20_000)
        expect(page.locator(".tool")).to_contain_text("t.delete_item")
        page.screenshot(path=str(ARTIFACTS / "page-approval.png"), full_page=True)
        approve.click()
        expect(page.locator(".msg.assistant").last).to_have_text("I deleted notes.txt for you.", timeout=20_000)
        expect(page.locator(".tool .tool-result")).to_contain_text("deleted notes.txt")
        expect(page.locator("#status")).to_contain_text("Done (end_turn)")
        page.screenshot(path=str(ARTIFACTS / "page-chat.png"), full_page=True)

        # usage view: a table row and a bar for the provider
        page.get_by_role("button", name="Usage").click()
        expect(page.locator("#usage-table tbody tr").first).to_contain_text("openai")
        expect(page.locator('#usage-chart svg rect[data-provider="openai"]')).to_have_count(1)
        expect(page.locator("#usage-calls")).to_have_text("2")
        # The fake's model has no price: the cost is unknown, never shown as 0.
        expect(page.locator("#usage-cost")).to_have_text("unknown")
        expect(page.locator("#usage-table tbody tr").first).to_contain_text("unknown")
        page.screenshot(path=str(ARTIFACTS / "page-usage.png"), full_page=True)

        # a narrow screen: nothing scrolls sideways
        page.set_viewport_size({"width": 375, "height": 800})
        page.get_by_role("button", name="Chat").click()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 376, f"the page is {width}px wide on a 375px screen"
        page.screenshot(path=str(ARTIFACTS / "page-narrow.png"), full_page=True)

        assert OPENAI_KEY not in page.content()
        unexpected = [e for e in console_errors if "status of 401" not in e]  # the wrong token, on purpose
        assert not unexpected, unexpected
    finally:
        context.close()
    for body in service.bodies:
        assert OPENAI_KEY not in body
        assert SECOND_KEY not in body
