"""A headless Chromium (the system's package, driven through its chromedriver by selenium) that
opens a local HTML page and reports what a reader would see wrong: script errors, images that
did not load, a blank screen."""

import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1300,2000")
INSTALL_HINT = "bash .ci/install-system-packages installs them (apt-get chromium chromium-driver; docs/development.md)"


@dataclass
class PageView:
    errors: list            # SEVERE entries of the browser log (script errors, failed loads)
    images: list            # (alt text, naturalWidth) of every <img>
    screenshot: np.ndarray  # uint8 (H, W, 3)


def start_chromium(user_data_dir: Path):
    """A selenium driver of the system Chromium; fails (does not skip) when it is not installed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_binary = shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        raise RuntimeError(f"Chromium or chromedriver not found: {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_binary), options=options)


def fresh_profile() -> Path:
    return Path(tempfile.mkdtemp(prefix="chromium-profile-"))


def view(driver, path: Path) -> PageView:
    """Open `path`, wait until it has loaded, and collect its errors, images and a screenshot."""
    driver.get(path.resolve().as_uri())
    driver.execute_async_script("var done = arguments[0]; if (document.readyState === 'complete') done(); "
                                "else window.addEventListener('load', function(){ done(); });")
    images = driver.execute_script("return Array.from(document.images).map(function(i){ return [i.alt, i.naturalWidth]; });")
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    with Image.open(io.BytesIO(driver.get_screenshot_as_png())) as shot:
        screenshot = np.array(shot.convert("RGB"))
    return PageView(errors, [tuple(image) for image in images], screenshot)


def cell_values(driver, table_id: str) -> tuple[list[str], list[list[str]]]:
    """(header texts, rows of [data-value, else the text] per cell) of the page's table `table_id`."""
    return driver.execute_script(
        "var t = document.getElementById(arguments[0]);"
        "return [Array.from(t.tHead.rows[0].cells).map(function(c){ return c.textContent; }),"
        " Array.from(t.tBodies[0].rows).map(function(r){ return Array.from(r.cells).map(function(c){"
        "  return [c.dataset.value === undefined ? null : c.dataset.value, c.textContent]; }); })];", table_id)
