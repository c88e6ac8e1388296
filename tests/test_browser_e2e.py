"""End to end: start the app on a free localhost port and drive Debian's headless Chromium through
every page with Selenium — select things, move sliders, and save a screenshot of each page under
`test-artifacts/` (gitignored)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Generous, because the machine is shared; the waits return as soon as the page is ready.
PAGE_TIMEOUT = 60

pytestmark = pytest.mark.browser

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "streamlit.log", "w")
    streamlit = Path(sys.executable).with_name("streamlit")
    proc = subprocess.Popen(
        [str(streamlit), "run", "app/Home.py", "--server.address", "127.0.0.1", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + PAGE_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start; see {ARTIFACTS / 'streamlit.log'}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="interp-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ---- waiting on Streamlit ----------------------------------------------------------------------

IDLE_JS = """
const app = document.querySelector('[data-testid="stApp"]');
if (!app) return false;
// The script is running while the status widget says so; lazy components show skeletons.
const status = document.querySelector('[data-testid="stStatusWidget"]');
if (status && /running/i.test(status.innerText)) return false;
if (document.querySelector('[data-testid="stSkeleton"]')) return false;
if (document.querySelector('[data-stale="true"]')) return false;
return app.getAttribute('data-test-script-state') !== 'running';
"""


def wait_idle(driver, settle: float = 0.5) -> None:
    """Wait until the script has finished and every element has been drawn, twice in a row."""
    wait = WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.2)
    wait.until(lambda d: d.execute_script(IDLE_JS))
    time.sleep(settle)
    wait.until(lambda d: d.execute_script(IDLE_JS))


def wait_for(driver, css: str, count: int = 1):
    try:
        return WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.2).until(
            lambda d: (els := d.find_elements(By.CSS_SELECTOR, css)) and len(els) >= count and els)
    except TimeoutException:
        screenshot(driver, "timeout")
        raise AssertionError(f"no {css!r} on {driver.current_url} after {PAGE_TIMEOUT}s") from None


def screenshot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_for(driver, '[data-testid="stApp"]')
    wait_idle(driver)


def assert_no_exception(driver) -> None:
    errors = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not errors, errors[0].text


def texts(driver, css: str) -> list[str]:
    out = []
    for el in driver.find_elements(By.CSS_SELECTOR, css):
        try:
            out.append(el.text)
        except StaleElementReferenceException:
            pass
    return out


def choose(driver, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label` by typing it and pressing Enter."""
    box = next(b for b in wait_for(driver, '[data-testid="stSelectbox"]') if label in b.text)
    field = box.find_element(By.CSS_SELECTOR, "input")
    field.click()
    field.send_keys(option)
    field.send_keys(Keys.ENTER)
    wait_idle(driver)


def move_slider(driver, label: str, steps: int) -> None:
    """Move the slider labelled `label` by `steps` key presses (negative: to the left)."""
    slider = next(s for s in wait_for(driver, '[data-testid="stSlider"]') if label in s.text)
    thumb = slider.find_element(By.CSS_SELECTOR, '[role="slider"]')
    thumb.click()
    key = Keys.ARROW_RIGHT if steps > 0 else Keys.ARROW_LEFT
    for _ in range(abs(steps)):
        thumb.send_keys(key)
    wait_idle(driver)


def slider_value(driver, label: str) -> str:
    slider = next(s for s in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"]') if label in s.text)
    return slider.find_element(By.CSS_SELECTOR, '[role="slider"]').get_attribute("aria-valuenow")


# ---- the pages ----------------------------------------------------------------------------------

def test_home_lists_pages(server, browser):
    open_page(browser, server)
    assert_no_exception(browser)
    nav = " ".join(texts(browser, '[data-testid="stSidebarNav"]'))
    for page in ("Models", "Circuits", "Bilinear spectra", "Relevance maps", "Harmless perturbations"):
        assert page in nav
    assert "Checkpoints" in " ".join(texts(browser, '[data-testid="stMetric"]'))
    screenshot(browser, "0_home")


def test_models_page(server, browser):
    open_page(browser, server + "/Models")
    assert_no_exception(browser)
    wait_for(browser, '[data-testid="stDataFrame"]')
    names = sorted(p.name for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").is_file())
    assert names, "no shipped checkpoints"
    wait_for(browser, ".js-plotly-plot")  # the accuracy bars
    # Choose the last checkpoint and check its path is shown beneath.
    choose(browser, "Checkpoint", names[-1])
    assert any(t.endswith(f"checkpoints/{names[-1]}") for t in texts(browser, '[data-testid="stCaptionContainer"]'))
    screenshot(browser, "1_models")
