"""What the console's tests share: a login link from a running agent, an HTTP client
acting as a browser, the CSRF token of a page, Debian's headless Chromium (selenium), and
screenshots for docs/console.md (`make screenshots` sets PROVSYNC_SCREENSHOTS)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.http_tls import client_context
from tests.conftest import AgentProcess


def login_link(agent: AgentProcess, *extra: str) -> str:
    """A one-time link from `provsync console` (``extra``: its options)."""
    made = agent.cli("console", *extra, check=False)
    assert made.returncode == 0, f"{made.stderr}\nthe agent's log:\n{agent.log_text()}"
    url = made.stdout.strip()
    assert url.startswith(f"{agent.url}/ui/login?code="), url
    return url


def browser_client(agent: AgentProcess) -> httpx.Client:
    return httpx.Client(base_url=agent.url, verify=client_context(), timeout=10)


class _LoggedIn(httpx.Client):
    # Already used for the login when a `with` enters it: entering again is a no-op
    # (httpx refuses to open a client twice); leaving it closes it.
    def __enter__(self) -> _LoggedIn:
        return self


def logged_in(agent: AgentProcess, *extra: str) -> httpx.Client:
    """A client holding a console session: use it in a `with`, or close it when done."""
    client = _LoggedIn(base_url=agent.url, verify=client_context(), timeout=10)
    log_in(client, login_link(agent, *extra))
    return client


def log_in(client: httpx.Client, link: str) -> httpx.Response:
    """What a person does with a link: open it, press Log in (the code is used then)."""
    page = client.get(link)
    assert page.status_code == 200, page.text
    code = link.split("code=", 1)[1]
    assert f'name="code" value="{code}"' in page.text
    done = client.post("/ui/login", data={"code": code})
    assert done.status_code == 303, done.text
    return done


def open_console(chromium: Any, agent: AgentProcess, *extra: str) -> None:
    """Log Chromium in through a one-time link (its button), on the Event Viewer."""
    from selenium.webdriver.common.by import By

    chromium.get(login_link(agent, *extra))
    until(chromium, lambda d: d.find_element(By.XPATH, "//button[text()='Log in']")).click()
    until(chromium, lambda d: "Event Viewer" in d.title)


def csrf_of(page: str) -> str:
    """The CSRF token of a page's forms."""
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def screenshot(driver: Any, name: str) -> None:
    """Save the window as ``<PROVSYNC_SCREENSHOTS>/<name>.png`` when that is set (the docs'
    pictures are taken by the browser tests themselves)."""
    folder = os.environ.get("PROVSYNC_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium at 1280x800, driven by selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary, "make test installs Debian's chromium"
    assert driver_path, "make test installs Debian's chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # Headless, and none of the background connections this machine's network refuses.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,800",
    ):
        options.add_argument(flag)
    # The page's console messages, to find what the content security policy blocked.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
        blocked = [
            entry["message"]
            for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"]
        ]
        assert not blocked, f"the console broke its own content security policy: {blocked}"
    finally:
        driver.quit()


# ------------------------------------------------------------------ in the browser
# A live region replaces its content after each change: an element found before may be
# gone by the time it is used, so these find it again until it works.
def until(chromium: Any, check: Any, within: float = 10, ignoring: tuple[Any, ...] = ()) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(chromium, within, ignored_exceptions=ignoring).until(check)


def click(chromium: Any, xpath: str) -> None:
    """Click what ``xpath`` finds, found again if a live refresh replaced it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked(driver: Any) -> bool:
        driver.find_element(By.XPATH, xpath).click()
        return True

    until(chromium, clicked, ignoring=(StaleElementReferenceException,))


def text_of(chromium: Any, css: str, within: float = 10) -> str:
    """The text of what ``css`` finds, once it is there (read again if replaced)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    ignoring = (NoSuchElementException, StaleElementReferenceException)
    found: str = until(
        chromium,
        lambda d: d.find_element(By.CSS_SELECTOR, css).text or " ",
        within=within,
        ignoring=ignoring,
    )
    return found


def type_into(chromium: Any, css: str, text: str) -> None:
    """Type ``text`` into the field ``css`` finds (a region does not refresh under a
    focused form; found again if it was replaced before the focus)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def typed(driver: Any) -> bool:
        field = driver.find_element(By.CSS_SELECTOR, css)
        field.clear()
        field.send_keys(text)
        return bool(field.get_attribute("value") == text)

    until(chromium, typed, ignoring=(NoSuchElementException, StaleElementReferenceException))
