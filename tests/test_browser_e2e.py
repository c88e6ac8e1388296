"""End to end: start the app on a free localhost port and drive Debian's headless Chromium through
every page with Selenium — select things, move sliders, and save a screenshot of each page under
`test-artifacts/` (gitignored)."""

from __future__ import annotations

import json
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

# selenium is a test dependency (pyproject's [test] extra): a missing one is a broken set-up, not a skip.
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def circuits_copy():
    """The shipped circuits/ copied: the Circuits test saves pins and supernodes into a graph file."""
    folder = Path(tempfile.mkdtemp(prefix="interp-circuits-"))
    shutil.copytree(ROOT / "circuits", folder / "circuits")
    yield folder / "circuits"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(circuits_copy):
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "streamlit.log", "w")
    # As `make app` starts it: the launcher that starts the cache warm-up with the server, then `streamlit run`.
    proc = subprocess.Popen(
        [sys.executable, "app/serve.py", "--server.address", "127.0.0.1", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "INTERP_CIRCUITS": str(circuits_copy),
             "INTERP_CHECKPOINTS": str(ROOT / "checkpoints")})
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
                 "--disable-dev-shm-usage", "--window-size=1400,1000"):
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


# Seconds from asking for a page to its script having finished and every element drawn, per page,
# written to test-artifacts/browser/page_times.json (the first visit of each page in this server).
PAGE_TIMES: dict[str, float] = {}


def open_page(driver, url: str) -> float:
    start = time.perf_counter()
    driver.get(url)
    wait_for(driver, '[data-testid="stApp"]')
    # Every page starts with its title: before it, the script has not started yet (and looks idle).
    wait_for(driver, '[data-testid="stMain"] h1')
    wait_idle(driver, settle=0.2)
    seconds = time.perf_counter() - start
    name = url.rstrip("/").rsplit("/", 1)[-1] if url.count("/") > 2 else "Home"
    if name not in PAGE_TIMES:
        PAGE_TIMES[name] = round(seconds, 2)
        (ARTIFACTS / "page_times.json").write_text(json.dumps(PAGE_TIMES, indent=1))
    return seconds


def full_page_screenshot(driver, name: str, width: int = 1400) -> Path:
    """A screenshot of the whole page at `width` px (the window grown to the page's height)."""
    driver.set_window_size(width, 1000)
    wait_idle(driver, settle=0.3)
    height = driver.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]'); return Math.max(1000, m ? m.scrollHeight + 80 : 1000);")
    driver.set_window_size(width, min(int(height), 6000))
    time.sleep(0.8)
    path = screenshot(driver, name)
    driver.set_window_size(1400, 1000)
    return path


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


def _slider_input(driver, label: str):
    slider = next(s for s in wait_for(driver, '[data-testid="stSlider"]') if label in s.text)
    return slider.find_element(By.CSS_SELECTOR, 'input[type="range"]')


def move_slider(driver, label: str, steps: int) -> None:
    """Move the slider labelled `label` by `steps` arrow-key presses (negative: to the left), as a keyboard
    user would: focus its range input, press the keys, and wait for the rerun."""
    field = _slider_input(driver, label)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", field)
    key = Keys.ARROW_RIGHT if steps > 0 else Keys.ARROW_LEFT
    actions = ActionChains(driver)
    for _ in range(abs(steps)):
        actions.send_keys(key)
    actions.perform()
    time.sleep(0.5)  # Streamlit sends a slider's value shortly after the last change
    wait_idle(driver)


def slider_value(driver, label: str) -> str:
    return _slider_input(driver, label).get_property("value")


def selectbox_value(driver, label: str) -> str:
    box = next(b for b in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSelectbox"]') if label in b.text)
    return box.find_element(By.CSS_SELECTOR, "input").get_attribute("value")


def metric_value(driver, label: str) -> str:
    for m in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        if m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]').text.strip() == label:
            return m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text.strip()
    raise AssertionError(f"no metric {label!r}")


def n_charts(driver) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot'))


# Among the markers of the traces called `names`, the one farthest from every other marker (a click
# there hits only that node): [trace index, point index, node id (customdata), distance in pixels].
LONELY_POINT_JS = """
const plot = arguments[0], names = arguments[1];
const traces = plot.querySelectorAll('.scatterlayer .trace');
const centre = p => { const r = p.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; };
const all = [];
plot.data.forEach((t, i) => {
  if (t.mode === 'markers') traces[i].querySelectorAll('path.point').forEach((p, k) => all.push([i, k, p, centre(p)]));
});
let best = null;
for (const [i, k, p, [x, y]] of all) {
  if (!names.includes(plot.data[i].name)) continue;
  let d = Infinity;
  for (const [, , q, [qx, qy]] of all) if (q !== p) d = Math.min(d, Math.hypot(qx - x, qy - y));
  if (best === null || d > best[3]) best = [i, k, plot.data[i].customdata[k], d];
}
return best;
"""


def click_graph_node(driver, names: list[str]) -> str:
    """Click, in the first chart, the marker of a trace in `names` (node types) that stands farthest
    from the others; return the node id it carries (its customdata)."""
    wait_laid_out(driver)
    plot = wait_for(driver, ".js-plotly-plot")[0]
    found = driver.execute_script(LONELY_POINT_JS, plot, names)
    assert found is not None, f"no {names} nodes in the graph"
    trace, point, node_id, distance = found
    assert distance > 6, f"every {names} node overlaps another (closest {distance:.1f} px)"
    marker = plot.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")[trace].find_elements(By.CSS_SELECTOR, "path.point")[point]
    ActionChains(driver).move_to_element(marker).click().perform()
    wait_idle(driver)
    return node_id


# ---- the pages ----------------------------------------------------------------------------------

def test_home_lists_pages(server, browser):
    open_page(browser, server)
    assert_no_exception(browser)
    nav = " ".join(texts(browser, '[data-testid="stSidebarNav"]'))
    for page in ("Models", "Circuits", "Bilinear spectra", "Relevance maps", "Harmless perturbations", "Recipes"):
        assert page in nav
    assert "Checkpoints" in " ".join(texts(browser, '[data-testid="stMetric"]'))
    full_page_screenshot(browser, "0_home")
    full_page_screenshot(browser, "0_home_900", width=900)


def test_models_page(server, browser):
    open_page(browser, server + "/Models")
    assert_no_exception(browser)
    wait_for(browser, '[data-testid="stDataFrame"]')
    names = sorted(p.name for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").is_file())
    assert names, "no shipped checkpoints"
    wait_for(browser, ".js-plotly-plot")  # the accuracy bars
    # Choose the last checkpoint and check its path is shown beneath.
    choose(browser, "Checkpoint", names[-1])
    # The rerun that draws the caption can come after the page first looks idle on a loaded machine: poll for it.
    try:
        WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.2).until(lambda d: any(
            t.endswith(f"checkpoints/{names[-1]}") for t in texts(d, '[data-testid="stCaptionContainer"]')))
    except TimeoutException:
        raise AssertionError(f"no caption naming checkpoints/{names[-1]}: "
                             f"{texts(browser, '[data-testid=stCaptionContainer]')}") from None
    full_page_screenshot(browser, "1_models")
    full_page_screenshot(browser, "1_models_900", width=900)


def test_circuits_page_select_node_and_threshold(server, browser):
    open_page(browser, server + "/Circuits")
    assert_no_exception(browser)
    assert "Saved graph" in " ".join(texts(browser, '[data-testid="stSelectbox"]')), "no saved graph under circuits/"
    screenshot(browser, "2_circuits")
    # Select a transcoder feature by clicking it in the graph: its card, links and ablation appear.
    node_id = click_graph_node(browser, ["cross layer transcoder", "attention sae feature"])
    assert_no_exception(browser)
    assert selectbox_value(browser, "Selected node").startswith(node_id + " ")
    heading = " ".join(texts(browser, "h2, h3"))
    assert f"Node {node_id}" in heading
    wait_for(browser, '[data-testid="stPlotlyChart"]', count=2)  # graph, activation histogram
    body = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    assert "Top activating contexts" in body and "Top logits" in body and "Strongest inputs" in body
    assert "Ablate this feature" in body
    screenshot(browser, "2_circuits_node")
    # A lower node threshold shows fewer nodes.
    before = int(metric_value(browser, "Nodes shown"))
    move_slider(browser, "Node threshold", -8)
    assert_no_exception(browser)
    assert float(slider_value(browser, "Node threshold")) < 1.0
    assert int(metric_value(browser, "Nodes shown")) < before
    screenshot(browser, "2_circuits_threshold")


OVERLAPS_JS = """
const plot = arguments[0];
const traces = plot.querySelectorAll('.scatterlayer .trace');
const marks = [];
plot.data.forEach((t, i) => {
  if (t.mode !== 'markers') return;
  traces[i].querySelectorAll('path.point').forEach(p => {
    const r = p.getBoundingClientRect();
    if (r.width > 0) marks.push([r.x + r.width / 2, r.y + r.height / 2, r.width / 2]);
  });
});
let clashes = 0;
for (let a = 0; a < marks.length; a++) for (let b = a + 1; b < marks.length; b++) {
  const [xa, ya, ra] = marks[a], [xb, yb, rb] = marks[b];
  if (Math.hypot(xa - xb, ya - yb) < ra + rb - 1) clashes++;
}
return [marks.length, clashes];
"""


# The graph's width as laid out (the page's `meta.laid_out_for_px`, from the width the browser reported for its
# column) and as drawn: the page reruns with the new width shortly after a window is resized.
LAID_OUT_JS = """
const plot = document.querySelector('.js-plotly-plot');
if (!plot || !plot.layout || !plot.layout.meta) return null;
return [plot.layout.meta.laid_out_for_px, plot.getBoundingClientRect().width];
"""


def wait_laid_out(driver, where: str = "") -> None:
    """Wait until the graph is laid out for the width it is drawn at (after the page's rerun with that width)."""
    def laid_out(d) -> bool:
        try:
            found = d.execute_script(LAID_OUT_JS)
        except StaleElementReferenceException:
            return False
        return bool(found) and found[0] is not None and abs(found[0] - found[1]) <= 20

    try:
        WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.3).until(laid_out)
    except TimeoutException:
        screenshot(driver, "2_circuits_not_laid_out")
        raise AssertionError(f"the graph was not laid out for the width it is drawn at {where}: "
                             f"{driver.execute_script(LAID_OUT_JS)}") from None
    wait_idle(driver)


def assert_no_overlapping_markers(driver, window_width: int) -> None:
    """At a `window_width` px window, once the graph is laid out for the width it is drawn at: no two node markers
    overlap (from the drawn markers' own boxes)."""
    driver.set_window_size(window_width, 1000)
    wait_laid_out(driver, f"at a {window_width} px window")
    plot = wait_for(driver, ".js-plotly-plot")[0]
    n_markers, clashes = driver.execute_script(OVERLAPS_JS, plot)
    assert n_markers > 10 and clashes == 0, \
        f"{clashes} overlapping node markers among {n_markers} at a {window_width} px window"


def button(driver, text: str):
    found = [b for b in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stButton"] button') if b.text.strip() == text]
    assert found, f"no button {text!r}"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", found[0])
    return found[0]


def driver_scroll(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)


def multiselect_text(driver, label: str) -> str:
    """The text of the multiselect labelled `label`: its label and the chips of what is selected."""
    box = next(b for b in wait_for(driver, '[data-testid="stMultiSelect"]') if label in b.text)
    return box.text


def multiselect_pick(driver, label: str, option: str) -> None:
    box = next(b for b in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMultiSelect"]') if label in b.text)
    field = box.find_element(By.CSS_SELECTOR, "input")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
    field.click()
    field.send_keys(option)
    field.send_keys(Keys.ENTER)
    field.send_keys(Keys.ESCAPE)
    wait_idle(driver)


def test_circuits_viewer_layout_labels_pins_and_supernodes(server, browser, circuits_copy):
    open_page(browser, server + "/Circuits")
    assert_no_exception(browser)
    # No two node markers overlap, in a wide window and in a narrow one (the sidebar takes half of a 900 px window).
    assert_no_overlapping_markers(browser, 900)
    screenshot(browser, "2_circuits_graph_900")
    assert_no_overlapping_markers(browser, 1400)
    plot = wait_for(browser, ".js-plotly-plot")[0]
    # Every feature marker carries a label in its hover text.
    hovers = browser.execute_script(
        "return arguments[0].data.filter(t => t.mode === 'markers' && "
        "['cross layer transcoder', 'attention sae feature'].includes(t.name)).flatMap(t => t.hovertext);", plot)
    assert hovers and all(h.startswith("<b>") for h in hovers)
    # Pin two feature nodes (one clicked in the graph, one picked by id), group them, save, and reopen the page.
    first = click_graph_node(browser, ["cross layer transcoder", "attention sae feature"])
    assert selectbox_value(browser, "Selected node").startswith(first + " ")
    button(browser, "Pin").click()
    wait_idle(browser)
    drawn = browser.execute_script("return arguments[0].data.filter(t => t.mode === 'markers')"
                                   ".flatMap(t => t.customdata);", wait_for(browser, ".js-plotly-plot")[0])
    features = browser.execute_script(
        "return arguments[0].data.filter(t => t.mode === 'markers' && "
        "['cross layer transcoder', 'attention sae feature'].includes(t.name)).flatMap(t => t.customdata);",
        wait_for(browser, ".js-plotly-plot")[0])
    # One whose id is inside no other id, so that typing it picks it alone.
    second = next(i for i in features if i != first and i not in first and first not in i
                  and not any(i in other for other in drawn if other != i))
    choose(browser, "Selected node", second)
    assert selectbox_value(browser, "Selected node").startswith(second + " ")
    button(browser, "Pin").click()
    wait_idle(browser)
    assert_no_exception(browser)
    pinned_box = multiselect_text(browser, "Pinned nodes")
    assert first in pinned_box and second in pinned_box, pinned_box
    multiselect_pick(browser, "Group these pinned nodes", first)
    multiselect_pick(browser, "Group these pinned nodes", second)
    name_box = next(b for b in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stTextInput"]')
                    if "supernode named" in b.text).find_element(By.CSS_SELECTOR, "input")
    driver_scroll(browser, name_box)
    name_box.send_keys("mover")
    name_box.send_keys(Keys.ENTER)
    wait_idle(browser)
    button(browser, "Group").click()
    wait_idle(browser)
    assert_no_exception(browser)
    body = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    if "mover:" not in body:
        screenshot(browser, "2_circuits_group_failed")
    assert "mover:" in body and n_charts(browser) >= 3  # graph, histogram, pinned subgraph
    full_page_screenshot(browser, "2_circuits_pinned")
    button(browser, "Save labels, pins and supernodes into the graph file").click()
    wait_idle(browser)
    assert "Saved into" in browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    open_page(browser, server + "/Circuits")
    body = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    assert "mover:" in body, "the supernode did not survive a reload"
    pinned_box = multiselect_text(browser, "Pinned nodes")
    assert first in pinned_box and second in pinned_box, pinned_box
    saved = [json.loads(p.read_text()) for p in sorted(circuits_copy.rglob("*.json")) if p.parent.name != "features"]
    assert any(g.get("qParams", {}).get("supernodes") and g["qParams"]["supernodes"][0][0] == "mover" for g in saved)
    full_page_screenshot(browser, "2_circuits")
    full_page_screenshot(browser, "2_circuits_900", width=900)


def test_recipes_page(server, browser):
    open_page(browser, server + "/Recipes")
    assert_no_exception(browser)
    wait_for(browser, '[data-testid="stDataFrame"]', count=2)
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPageLink"] a')]
    assert links and all("Circuits?graph=" in h for h in links)
    full_page_screenshot(browser, "6_recipes")
    full_page_screenshot(browser, "6_recipes_900", width=900)
    # A link opens its graph on the Circuits page.
    target = links[1]
    open_page(browser, target)
    assert_no_exception(browser)
    graph = target.split("graph=")[1].replace("%2F", "/")
    assert selectbox_value(browser, "Saved graph").startswith(graph)


def test_page_times_were_recorded():
    times = json.loads((ARTIFACTS / "page_times.json").read_text())
    assert {"Home", "Models", "Circuits", "Recipes"} <= set(times)


def test_bilinear_spectra_page(server, browser):
    open_page(browser, server + "/Bilinear_spectra")
    assert_no_exception(browser)
    wait_for(browser, '[data-testid="stPlotlyChart"]', count=4)  # spectrum, eigenvectors, truncation, classes
    move_slider(browser, "Eigenvectors shown", -4)
    assert_no_exception(browser)
    assert slider_value(browser, "Eigenvectors shown") == "4"
    grid = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[1]
    assert browser.execute_script("return arguments[0].data.length;", grid) == 4
    choose(browser, "minus class", "6: Shirt")
    assert_no_exception(browser)
    assert "Shirt" in " ".join(texts(browser, ".js-plotly-plot .gtitle"))
    full_page_screenshot(browser, "3_bilinear_spectra")
    full_page_screenshot(browser, "3_bilinear_spectra_900", width=900)


def test_relevance_page(server, browser):
    open_page(browser, server + "/Relevance_maps")
    assert_no_exception(browser)
    wait_for(browser, '[data-testid="stPlotlyChart"]', count=2)  # maps side by side, flipping curves
    image_js = "return JSON.stringify(arguments[0].data[0].z);"
    before = browser.execute_script(image_js, browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[0])
    move_slider(browser, "Test image", 3)
    assert_no_exception(browser)
    assert slider_value(browser, "Test image") == "3"
    wait_for(browser, '[data-testid="stPlotlyChart"]', count=2)

    def image_changed(driver) -> bool:
        # the rerun replaces the charts a little after the slider moves: poll until the new image is drawn
        plots = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
        return bool(plots) and driver.execute_script(image_js, plots[0]) != before

    try:
        WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.3,
                      ignored_exceptions=(StaleElementReferenceException,)).until(image_changed)
    except TimeoutException:
        raise AssertionError("the input image did not change with the slider") from None
    assert "Pixel flipping" in browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    full_page_screenshot(browser, "4_relevance_maps")
    full_page_screenshot(browser, "4_relevance_maps_900", width=900)


def test_harmless_page(server, browser):
    open_page(browser, server + "/Harmless_perturbations")
    assert_no_exception(browser)
    wait_for(browser, '[data-testid="stPlotlyChart"]', count=2)  # images, logits
    start = slider_value(browser, "Magnitude")
    move_slider(browser, "Magnitude", 2)
    assert_no_exception(browser)
    assert slider_value(browser, "Magnitude") != start
    approximate = any("approximate space" in t for t in texts(browser, '[data-testid="stAlert"]'))
    if not approximate:  # an exact null space never moves the prediction
        assert "unchanged" in " ".join(texts(browser, '[data-testid="stMetricDelta"]'))
    full_page_screenshot(browser, "5_harmless_perturbations")
    full_page_screenshot(browser, "5_harmless_perturbations_900", width=900)
