"""The web page in a real browser: Debian's chromium, headless, driven by Playwright (no browser download).

Uploads a photo on the page, waits for the cut-out, and checks the pixels the page shows against the API's answer
for the same photo; the screenshot is kept in test-artifacts/serve_page.png."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.serve.conftest import REPO

#: Real server subprocesses (seconds to start each): in make test, not make test-fast.
pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]
#: Reads an <img>'s pixels through a canvas: RGBA, row-major.
READ_PIXELS = """img => { const c = document.createElement('canvas'); c.width = img.naturalWidth;
  c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return Array.from(g.getImageData(0, 0, c.width, c.height).data); }"""


def test_page_cuts_out_an_uploaded_photo_as_the_api_does(server, serve_folder):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: `make install-browser` (as root) installs it"
    photo = serve_folder / "images" / "coffee.jpg"
    with server.client() as client:
        expected = client.post("/v1/cutout", params={"output": "both"}, content=photo.read_bytes()).json()
    expected_rgba = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(expected["cutout_png"]), np.uint8),
                                              cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(server.url)
        page.wait_for_function("document.querySelectorAll('#model option').length === 2")
        page.set_input_files("#file-cutout", str(photo))
        result = page.locator(".result").first
        result.wait_for(timeout=60_000)
        images = result.locator("img")
        assert images.count() == 3 and "mask (ben_tiny)" in result.inner_text()
        cutout = images.nth(2)
        cutout.evaluate("img => img.decode()")
        shown = np.array(cutout.evaluate(READ_PIXELS), dtype=np.uint8).reshape(expected_rgba.shape)
        # the browser shows the API's cut-out: colour where opaque (canvases premultiply alpha), alpha exactly
        np.testing.assert_array_equal(shown[..., 3], expected_rgba[..., 3])
        opaque = expected_rgba[..., 3] == 255
        assert opaque.any()
        np.testing.assert_array_equal(shown[opaque], expected_rgba[opaque])
        assert "coffee.jpg: done (120 x 80)" in page.inner_text("#status-cutout")

        page.click("nav button[data-tab=compare]")  # two models side by side on the same photo
        page.set_input_files("#file-compare", str(photo))
        page.wait_for_function("document.querySelectorAll('#comparison img').length === 3")
        assert page.inner_text("#comparison").split() == ["coffee.jpg", "ben_tiny", "ben_dla34"]
        page.click("nav button[data-tab=cutout]")
        page.screenshot(path=str(artifacts / "serve_page.png"), full_page=True)
        browser.close()
    assert (artifacts / "serve_page.png").stat().st_size > 10_000
    shutil.copy(artifacts / "serve_page.png", serve_folder / "serve_page.png")
