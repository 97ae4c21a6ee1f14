"""The page at `/` of a real `vvbench serve --api-key` in headless Chromium (see `browserkit.py`).

One test, one service, as a user goes: without the key every panel shows the service's 401; with
it, a short streamed synthesis plays through Web Audio (the first buffer scheduled before the body
ended, time to first audio shown), a format is played whole or refused with the service's own
message, a job's progress bar reaches 100% while its chunks are listed and playable (an <audio>
with a finite duration, the first one loaded before the job finished), and the stats panel shows
numbers. The page must fetch nothing but its own origin and log no error besides the refusals it
was asked to show. The screenshot goes to the test's tmp dir (and to $VVBENCH_SCREENSHOT_DIR).
"""

from __future__ import annotations

import math
import os
import shutil
import time

import httpx
import pytest
from browserkit import CHROMIUM, DRIVER, chromium, console
from integration.serverkit import Server

pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")

KEY = "page-test-key"
SPEECH = "Hello from the page."
JOB = "First part. Then a second one."


@pytest.fixture(scope="module")
def starting(tmp_path_factory):
    """The service's child process, started but not waited for: Chromium starts meanwhile."""
    server = Server(tmp_path_factory.mktemp("page-log"), tmp_path_factory.mktemp("page-data"), "--api-key", KEY,
                    "--job-chunk-frames", "5", "--batch-window-ms", "10")
    server.start()
    try:
        yield server
    finally:
        server.stop(grace_s=30)


@pytest.fixture(scope="module")
def browser(starting):
    driver = chromium("--window-size=1280,1350")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def service(starting, browser):
    starting.wait_ready(f"{starting.wait_url(180)}/readyz", 180)
    return starting


def page_state(browser, expr: str = ""):
    return browser.execute_script(f"return window.vvbenchPage{expr};")


def wait_for(browser, what: str, check, timeout_s: float = 60.0):
    """Poll `check()` until truthy; on timeout fail with what the page logged and recorded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what}: not seen in {timeout_s:g} s; page state {page_state(browser)}; console {console(browser)}")


def text(browser, element_id: str) -> str:
    return browser.find_element("id", element_id).text


def type_into(browser, element_id: str, value: str) -> None:
    el = browser.find_element("id", element_id)
    el.clear()
    el.send_keys(value)


def choose(browser, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", element_id)).select_by_value(value)


def speak(browser, fmt: str) -> dict:
    """Choose `fmt`, press Speak, wait for that synthesis (a new record, not the last one) to finish."""
    choose(browser, "speech-format", fmt)
    before = (page_state(browser, ".speech") or {}).get("t0")

    def finished():
        rec = page_state(browser, ".speech") or {}
        return rec.get("t0") != before and rec.get("done") and rec

    browser.find_element("id", "speech-go").click()
    return wait_for(browser, f"speech ({fmt}) finished", finished)


def test_page_speaks_runs_a_job_and_shows_stats_behind_the_api_key(service, browser, tmp_path):
    browser.get(f"{service.url}/")
    # Without the key: the service's 401 in the page, for the data and for a synthesis.
    wait_for(browser, "401 in the stats panel", lambda: text(browser, "stats-error").startswith("401: missing API key"))
    assert text(browser, "page-error").startswith("401: ")
    assert speak(browser, "pcm")["error"]["status"] == 401
    assert text(browser, "speech-error").startswith("401: missing API key")

    type_into(browser, "api-key", KEY)
    browser.find_element("css selector", "#key-form button").click()
    wait_for(browser, "voices listed", lambda: len(browser.find_elements("css selector", "#speech-voice option")) > 3)
    wait_for(browser, "stats without error", lambda: not browser.find_element("id", "stats-error").is_displayed())
    assert browser.execute_script("return sessionStorage.getItem('vvbench.apiKey')") == KEY

    def options(element_id: str) -> list[str]:
        return [o.get_attribute("value") for o in browser.find_elements("css selector", f"#{element_id} option")]

    assert options("speech-format") == ["mp3", "opus", "aac", "flac", "wav", "pcm"]
    assert options("job-format") == ["wav", "pcm"]  # what POST /v1/jobs takes; any other is its 400

    # A compressed format: played whole when the service has it, else its refusal shown as it said it.
    direct = httpx.post(f"{service.url}/v1/audio/speech", headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                        json={"input": "Hi.", "response_format": "mp3", "stream": False, "seed": 7})
    type_into(browser, "speech-text", "Hi.")
    rec = speak(browser, "mp3")
    if direct.status_code == 200:
        assert rec["error"] is None and rec["audioS"] > 0.2, rec
    else:
        assert direct.status_code == 400, direct.text
        assert text(browser, "speech-error") == f"400: {direct.json()['error']['message']}"

    # A long-form job: chunks listed and playable while the rest renders, then the whole audio.
    type_into(browser, "job-text", JOB)
    browser.find_element("id", "job-go").click()
    job = wait_for(browser, "job done with its full audio", lambda: (page_state(browser, ".job") or {}).get("fullDurationS")
                   and page_state(browser, ".job"))
    assert job["state"] == "done" and job["error"] is None, job
    assert text(browser, "job-percent") == "100%"
    assert browser.find_element("id", "job-progress").get_attribute("aria-valuenow") == "100"
    status = httpx.get(f"{service.url}/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert status["chunks_total"] >= 3 and len(job["chunks"]) == status["chunks_total"], (status, job)
    assert len(browser.find_elements("css selector", "#job-chunks li audio")) == status["chunks_total"]
    assert job["chunks"][0]["loadedAtProgress"] < 1.0, job  # the preview: playable before the job finished
    for chunk in job["chunks"]:
        duration = browser.execute_script(f"return document.getElementById('job-chunk-{chunk['index']}').duration")
        assert math.isfinite(duration) and duration > 0 and abs(duration - chunk["durationS"]) < 1e-6, (chunk, duration)
    assert abs(job["fullDurationS"] - status["audio_s"]) < 0.01, (job, status)

    # A streamed synthesis: Web Audio buffers scheduled as the body arrives.
    type_into(browser, "speech-text", SPEECH)
    type_into(browser, "speech-seed", "7")
    rec = speak(browser, "pcm")
    assert rec["error"] is None, rec
    assert rec["buffers"] >= 2 and rec["firstBufferMs"] < rec["bodyEndMs"], rec  # playback began before the end
    assert rec["audioS"] > 0.5 and rec["contextState"] == "running", rec  # scheduled on a playing context
    shown = text(browser, "speech-ttfa")
    assert shown.endswith(" ms") and abs(int(shown[:-3]) - rec["firstBufferMs"]) <= 0.5, (shown, rec)
    assert text(browser, "speech-seed-used") == "7"

    # The live state: numbers, refreshed.
    updates = page_state(browser, ".statsUpdates")
    wait_for(browser, "stats refreshed", lambda: page_state(browser, ".statsUpdates") > updates, timeout_s=5)
    assert text(browser, "stat-queue").isdigit() and text(browser, "stat-active").split(" / ")[0].isdigit()
    assert text(browser, "stat-weights").endswith("MiB")

    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "service-page.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    if os.environ.get("VVBENCH_SCREENSHOT_DIR"):
        shutil.copy(shot, os.environ["VVBENCH_SCREENSHOT_DIR"])

    origins = browser.execute_script("return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert set(origins) == {service.url}, origins
    expected = ("status of 401", "status of 400")  # the refusals the page was asked to show
    errors = [e for e in console(browser) if e["level"] == "SEVERE" and not any(x in e["message"] for x in expected)]
    assert not errors, errors
