"""The playground page in a real headless browser (Debian's chromium and chromium-driver,
driven by selenium) against a real server with the tiny model: samples stream in token by
token, copy works, errors show inline, and the browser logs no error."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.live import LiveServer, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

if not (CHROMIUM and DRIVER) and not os.environ.get("CI"):
    pytest.skip(
        "needs chromium and chromium-driver (apt-get install chromium chromium-driver; CI "
        "installs them)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def live(tiny_model_dir: Path) -> Iterator[LiveServer]:
    with serving(tiny_model_dir, "--max-wait-ms", "5") as server:
        yield server


def wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the page")


def severe_logs(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_playground_streams_samples_with_the_models_settings(
    browser: Any, live: LiveServer
) -> None:
    browser.get(live.url + "/")
    find = browser.find_element
    wait_for(lambda: "context" in find(By.ID, "details").text)  # /info has been read
    assert find(By.ID, "model").text.endswith("tiny-gpt2")
    # The model's defaults fill the controls (the tiny model's generation config: none, so
    # quotegen's own).
    assert float(find(By.ID, "temperature").get_attribute("value")) == pytest.approx(0.9)
    assert int(find(By.ID, "max_new_tokens").get_attribute("value")) == 40
    assert find(By.ID, "key-field").get_attribute("hidden") is not None  # no auth: no key field

    find(By.ID, "prompt").send_keys("life is")
    samples = find(By.ID, "n")
    samples.clear()
    samples.send_keys("3")
    tokens = find(By.ID, "max_new_tokens")
    tokens.clear()
    tokens.send_keys("30")
    find(By.ID, "seed").send_keys("7")
    find(By.ID, "generate").click()

    cards = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results .result"))
    assert len(cards) == 3
    wait_for(lambda: all(c.get_attribute("data-state") == "done" for c in cards))
    texts = [c.find_element(By.CSS_SELECTOR, ".text").text for c in cards]
    for card, text in zip(cards, texts, strict=True):
        assert text.startswith("Life is")
        # Token events arrived one by one (more than one piece per sample).
        assert int(card.get_attribute("data-chunks")) > 1
        assert "seed" in card.find_element(By.CSS_SELECTOR, ".info").text
    assert len(set(texts)) > 1  # seeds 7, 8, 9: different samples

    copy = cards[0].find_element(By.CSS_SELECTOR, ".copy")
    copy.click()
    wait_for(lambda: copy.text == "Copied", timeout=5)
    assert find(By.ID, "error").get_attribute("hidden") is not None
    assert severe_logs(browser) == []

    # The same seed again gives the same samples.
    find(By.ID, "generate").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results .result"))
    again = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    wait_for(lambda: all(c.get_attribute("data-state") == "done" for c in again))
    assert [c.find_element(By.CSS_SELECTOR, ".text").text for c in again] == texts


def test_playground_shows_errors_inline(browser: Any, live: LiveServer) -> None:
    browser.get(live.url + "/")
    find = browser.find_element
    wait_for(lambda: "context" in find(By.ID, "details").text)
    # A prompt past the server's byte limit: the browser cannot know it; the server's 422
    # message shows on the page.
    browser.execute_script("document.getElementById('prompt').value = 'x'.repeat(100000)")
    find(By.ID, "generate").click()
    error = wait_for(lambda: find(By.ID, "error").text)
    assert "the limit is" in error
    card = browser.find_element(By.CSS_SELECTOR, "#results .result")
    assert card.get_attribute("data-state") == "error"


def test_playground_asks_for_the_api_key(browser: Any, tiny_model_dir: Path) -> None:
    with serving(tiny_model_dir, "--api-key", "sesame") as server:
        browser.get(server.url + "/")
        find = browser.find_element
        key_field = find(By.ID, "key-field")
        wait_for(lambda: key_field.get_attribute("hidden") is None)
        key = find(By.ID, "key")
        key.send_keys("sesame")
        find(By.ID, "prompt").click()  # the key field's change event reloads /info
        wait_for(lambda: "context" in find(By.ID, "details").text)
        find(By.ID, "generate").click()
        cards = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results .result"))
        wait_for(lambda: all(c.get_attribute("data-state") == "done" for c in cards))
