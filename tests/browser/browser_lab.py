"""The course in a real browser: JupyterLab on 127.0.0.1 driven by headless Chromium (selenium).

Run with ``make test-browser`` (``pytest tests/browser/browser_lab.py``; the file name keeps it out
of ``pytest tests``). For notebooks 07 and 08 on the ``smoke`` profile it opens the notebook in
JupyterLab, runs all cells and fails on any error output, then moves the interactive widget and
asserts that the output depending on it changed:

* 07: drags the threshold slider; the confusion matrix and the metrics line below it are redrawn;
* 08: picks another outcome in the Grad-CAM picker and moves its rank slider; the image changes.

Afterwards the notebook files on disk must be byte for byte what they were: running and playing
with a notebook writes nothing into it. (The lab runs with autosave off, so the test does not save
either; what a user *saves* is kept out of commits by the git clean filter, see
``tests/test_notebooks_clean.py``.)

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``)
and selenium (the ``dev`` extra). A missing browser or driver is a failure with that instruction,
never a skip. Notebooks 07 and 08 load the smoke runs of 03-05; if ``results/smoke/binary.json`` is
missing they are made first with ``python -m pneumolib.run --profile smoke --only 03 04``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("07_ensemble_calibration.ipynb", "08_gradcam.ipynb")
CELL_TIMEOUT_S = 600  # all cells of one notebook (smoke: well under a minute on 2 cores)
CHANGE_TIMEOUT_S = 60

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:  # reported by the fixture, as a failure
    webdriver = None


def _find(*names: str) -> str | None:
    return next((p for n in names if (p := shutil.which(n))), None)


@pytest.fixture(autouse=True)
def real_project_root(monkeypatch):
    """This test drives the real checkout, not the unit tests' isolated temporary root."""
    monkeypatch.delenv("PNEUMOLAB_ROOT", raising=False)


def _digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(folder: Path) -> None:
    """User settings of the test's lab: no autosave, every cell in the DOM, no news or update checks."""
    for plugin, values in {
        "docmanager-extension/plugin": {"autosave": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = folder / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def smoke_runs():
    """The finished smoke runs and results that 07 and 08 load."""
    if not (ROOT / "results" / "smoke" / "binary.json").exists():
        subprocess.run(
            [sys.executable, "-m", "pneumolib.run", "--profile", "smoke", "--only", "03", "04"], cwd=ROOT, check=True
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory, smoke_runs):
    """A JupyterLab server on 127.0.0.1 (random port and token) in the project root; yields its base URL."""
    home = tmp_path_factory.mktemp("lab")
    _settings(home / "settings")
    token, port = secrets.token_hex(16), _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter"),  # this venv's python3 kernel
    }
    env.pop("PNEUMOLAB_ROOT", None)
    log = open(home / "lab.log", "wb")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
            "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        ],  # fmt: skip
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(home / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through chromedriver; missing pieces fail with the command to install them."""
    if webdriver is None:
        pytest.fail('selenium is not installed: pip install -e ".[dev]"')
    chrome, driver = _find("chromium", "chromium-browser"), _find("chromedriver")
    if not chrome or not driver:
        pytest.fail(
            "the browser test needs Chromium and its driver: apt-get install chromium chromium-driver "
            f"(found chromium: {chrome}, chromedriver: {driver})"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    try:
        drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)
    except WebDriverException as err:
        pytest.fail(f"Chromium did not start ({err.msg}); check that chromium and chromium-driver match")
    yield drv
    drv.quit()


# --------------------------------------------------------------------------- driving the lab
def _wait(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


STATE_JS = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.sessionContext || !panel.content || !panel.content.widgets) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = panel.content.widgets.filter(c => c.model.type === 'code');
const errors = [];
for (const c of cells) for (const o of c.model.outputs.toJSON())
  if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
return {path: panel.context.path, kernel: kernel ? kernel.status : null, dirty: panel.context.model.dirty,
        counts: cells.map(c => c.model.executionCount), errors: errors};
"""


def _run_all(driver, base: str, token: str, name: str) -> None:
    driver.get(f"{base}/lab/tree/notebooks/{name}?token={token}")
    _wait(
        lambda: (s := driver.execute_script(STATE_JS)) and s["path"].endswith(name) and s["kernel"] == "idle",
        120,
        f"{name} to open with an idle kernel",
    )
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished():
        s = driver.execute_script(STATE_JS)
        if s["errors"]:
            pytest.fail(f"{name}: a cell failed in JupyterLab: {s['errors'][0]}")
        return s["kernel"] == "idle" and all(c is not None for c in s["counts"]) and s

    _wait(finished, CELL_TIMEOUT_S, f"all cells of {name} to run")


def _visible(driver, element):
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    return element


def _html(element) -> str:
    return element.get_attribute("innerHTML")


def _changed(driver, element, before: str, what: str) -> str:
    return _wait(lambda: (h := _html(element)) != before and "<img" in h and h, CHANGE_TIMEOUT_S, what)


def _drag(driver, slider, dx: int) -> None:
    handle = _visible(driver, slider.find_element(By.CSS_SELECTOR, ".noUi-handle"))
    ActionChains(driver).click_and_hold(handle).move_by_offset(dx, 0).release().perform()


# --------------------------------------------------------------------------- the tests
def test_07_threshold_slider_redraws_the_confusion_matrix(lab, browser):
    before_files = _digests()
    _run_all(browser, *lab, NOTEBOOKS[0])
    box = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".widget-interact"), 60, "the threshold slider")[0]
    out = box.find_element(By.CSS_SELECTOR, ".widget-output")
    readout = box.find_element(By.CSS_SELECTOR, ".widget-readout")
    first = _wait(lambda: (h := _html(out)) and "<img" in h and h, 60, "the first confusion matrix")
    assert readout.text.strip() == "0.50" and "recall" in out.text
    _drag(browser, box.find_element(By.CSS_SELECTOR, ".widget-slider"), -20)
    after = _changed(browser, out, first, "the confusion matrix to be redrawn")
    assert readout.text.strip() != "0.50" and float(readout.text) < 0.5
    assert after != first and "recall" in out.text
    print(f"07: threshold 0.50 -> {readout.text.strip()}: {out.text.strip()}")
    assert _digests() == before_files, "running 07 and moving the slider changed a notebook file"


def test_08_gradcam_picker_changes_the_image(lab, browser):
    before_files = _digests()
    _run_all(browser, *lab, NOTEBOOKS[1])
    picker = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".widget-dropdown select"), 60, "the picker")[-1]
    box = picker.find_element(By.XPATH, "./ancestor::div[contains(@class, 'widget-vbox')][1]")
    out = box.find_element(By.CSS_SELECTOR, ".widget-output")
    first = _wait(lambda: (h := _html(out)) and "<img" in h and h, 60, "the first Grad-CAM image")
    options = [o.text for o in Select(picker).options]
    assert options and set(options) <= {"TP", "TN", "FP", "FN"}
    slider = box.find_element(By.CSS_SELECTOR, ".widget-slider")
    moved, dragged = [], False
    for i, option in enumerate(options):  # another outcome (if there is one), and the rank within one
        if i > 0:
            Select(_visible(browser, picker)).select_by_index(i)
            first = _changed(browser, out, first, f"the image of outcome {option}")
            moved.append(f"outcome {option}")
        handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
        if not dragged and float(handle.get_attribute("aria-valuemax") or 0) >= 1:  # 2+ images of this outcome
            _drag(browser, slider, 40)
            first = _changed(browser, out, first, f"the image to follow the rank slider ({option})")
            moved.append(f"{option} rank {handle.get_attribute('aria-valuenow')}")
            dragged = True
        if dragged and (i > 0 or len(options) == 1):
            break
    assert moved, f"neither the outcome nor the rank could change (outcomes: {options})"
    print(f"08: outcomes {options}; moved: {', '.join(moved)}")
    assert _digests() == before_files, "running 08 and using the picker changed a notebook file"
