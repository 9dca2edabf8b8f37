"""The HTML report in a real browser (headless Chromium): every image decodes, every table renders.

The page carries a small inline script that, on load, writes
``images=N decoded=M tables=K`` into ``<pre id="lrbench-check">`` (an image counts as decoded
when ``img.complete && img.naturalWidth > 0``); the test reads it back from the DOM the browser
dumps, and takes a screenshot.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest

from lrbench.report import write_reports
from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.store import Store

BROWSER = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium, chromium-browser or google-chrome on PATH")

# per problem: curves, LR traces, ECDF (+ trajectories on beale); the CD diagram and the profiles
EXPECTED_IMAGES = 4 + 3 + 2
EXPECTED_TABLES = 2 + 2 + 1  # results and cost per problem, the ranking


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    with Store(tmp / "r.sqlite") as store:
        for problem, budget in (("beale", Budget(30, 1)), ("illcond_regression", Budget(30, 5))):
            for spec in (OptimizerSpec("sgd", {"lr": 0.01}), OptimizerSpec("adam", {"lr": 0.05})):
                for seed in range(3):
                    store.append(run_one(RunConfig("b", ProblemSpec(problem), spec, seed, "cpu", budget)))
    (path,) = write_reports(tmp / "r.sqlite", tmp / "out", "html")
    return path


def _chromium(*args: str) -> subprocess.CompletedProcess:
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_every_image_decodes_and_every_table_renders_in_chromium(page):
    done = _chromium("--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    m = re.search(r'<pre id="lrbench-check"[^>]*>images=(\d+) decoded=(\d+) tables=(\d+)</pre>', done.stdout)
    assert m, "the page's check did not run:\n" + done.stdout[-2000:] + done.stderr[-2000:]
    images, decoded, tables = map(int, m.groups())
    assert decoded == images == EXPECTED_IMAGES
    assert tables == EXPECTED_TABLES


def test_screenshot_is_a_nonempty_png(page, tmp_path):
    shot = tmp_path / "shot.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (1280, 2000)
        assert len(im.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 2  # not a blank page
