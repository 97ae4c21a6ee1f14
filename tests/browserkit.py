"""Headless Chromium (Debian's `chromium` and `chromium-driver`) through Selenium, for the browser tests.

`chromium(*flags)` starts one driver with the shared flags: headless, no sandbox (CI runs as root),
no GPU, no background networking (no update checks, no safe-browsing lists), and every host name
unresolvable except the loopback addresses, so a page that tried to load anything from elsewhere
would fail visibly. The browser's console is kept (`console(driver)`) so a failing test can say
what the page said.
"""

from __future__ import annotations

import shutil

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-extensions", "--disable-sync", "--no-first-run", "--window-size=1280,1000",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")


def chromium(*flags: str):
    """A Selenium Chrome driver on Debian's chromium with FLAGS (later flags win), page loads limited to 60 s."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    return driver


def console(driver) -> list[dict]:
    """The browser console entries since the last call (level, message)."""
    return [{"level": e["level"], "message": e["message"]} for e in driver.get_log("browser")]
