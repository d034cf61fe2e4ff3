"""JupyterLab as its users meet it: `make lab`'s command, a real headless Chromium, the UI.

The lab is started with the command `make lab` runs (plus flags for a test:
no browser, a free loopback port, a token, settings and workspaces in a
temporary folder) on a copy of the notebooks folder, so a run from the UI
writes nothing into the checkout. The kernel is the batch's (`batch.project_kernel`:
this Python, this pqlab first). Chromium is Debian's (`apt-get install chromium`),
driven by Playwright (`playwright` from PyPI; its own browser download is not used).
Under CI a missing browser fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

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
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from pqlab.lab import batch
from pqlab.study import config

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# Generous: on a busy 2-core machine the lab starts in ~5-15 s, a kernel in ~2-5 s and the
# explorer's first measurement takes a few seconds. Each wait polls and ends at once when met.
START_DEADLINE_S = 90
STEP_DEADLINE_S = 90
BROKEN_SOURCE = 'raise RuntimeError("a deliberately broken cell")'
# Settings for the test's lab: no autosave (nothing written behind the test's back), no
# news or update check (no toast over the notebook, no network).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}
# The errors of the notebook in view, as "cell N [prompt] `first source line`: last line of
# the error". An error output is rendered as text of type stderr holding a traceback.
CELL_ERRORS_JS = """
() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')).flatMap((cell, i) => {
  const errors = Array.from(cell.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    .map(o => o.innerText).filter(t => t.includes('Traceback'));
  if (!errors.length) return [];
  const prompt = (cell.querySelector('.jp-InputPrompt') || {}).innerText || '';
  const line = (cell.querySelector('.cm-line') || {}).innerText || '';
  const last = errors[0].trim().split('\\n').filter(l => l.trim()).pop();
  return [`cell ${i + 1} ${prompt.trim()} \\`${line.trim()}\\`: ${last.trim()}`];
})
"""


def _browser_or_reason() -> str | None:
    """Why no browser test can run here, or None."""
    if not CHROMIUM.is_file():
        return f"Chromium is missing ({CHROMIUM}): apt-get install chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing: pip install -e '.[dev]'"
    return None


def _need_browser() -> None:
    reason = _browser_or_reason()
    if reason and os.environ.get("CI"):
        pytest.fail(f"browser test under CI: {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)


def lab_command(flags: list[str]) -> list[str]:
    """The command `make lab` runs, with this Python's jupyter and ``flags`` added."""
    bin_dir = Path(sys.executable).parent
    out = subprocess.run(["make", "-s", "-n", "lab", f"BIN={bin_dir}",
                          f"LAB_FLAGS={' '.join(flags)}"], cwd=config.ROOT,
                         capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith(f"{bin_dir}/jupyter lab"))
    return line.split()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _broken_copy(path: Path) -> None:
    """The explorer with a cell that raises before the explorer is built."""
    nb = nbformat.read(config.EXPLORER, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(BROKEN_SOURCE))
    nbformat.write(nb, path)


class Lab:
    """A running JupyterLab: its URL with the token, and its REST API."""

    def __init__(self, root: Path, port: int, token: str, proc: subprocess.Popen, log: Path):
        self.root, self.port, self.token, self.proc, self.log = root, port, token, proc, log

    def url(self, path: str, query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}?{query}token={self.token}"

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(self.url(f"api/{path}"), method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])


def _wait_started(lab: Lab) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if lab.proc.poll() is not None:
            pytest.fail(f"`make lab` exited with {lab.proc.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("status")
            return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer within {START_DEADLINE_S} s:\n{lab.log_tail()}")


def _stop(lab: Lab) -> None:
    """Shut down the lab's kernels, then the lab (the process group it was started in)."""
    try:
        for kernel in lab.api("kernels") or []:
            lab.api(f"kernels/{kernel['id']}", method="DELETE")
    except OSError:
        pass
    if lab.proc.poll() is not None:
        return
    os.killpg(lab.proc.pid, signal.SIGTERM)
    try:
        lab.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(lab.proc.pid, signal.SIGKILL)
        lab.proc.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on a copy of the notebooks folder (the explorer and a broken copy)."""
    _need_browser()
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    shutil.copy(config.EXPLORER, root / "notebooks" / config.EXPLORER.name)
    _broken_copy(root / "notebooks" / "broken.ipynb")
    for name, values in LAB_SETTINGS.items():
        (root / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "settings" / name).write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    command = lab_command([
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--LabApp.user_settings_dir={root / 'settings'}",
        f"--LabApp.workspaces_dir={root / 'workspaces'}"])
    log = root / "lab.log"
    with batch.project_kernel(), open(log, "wb") as out:
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime")}
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        running = Lab(root, port, token, proc, log)
        try:
            _wait_started(running)
            yield running
        finally:
            _stop(running)


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    """A headless Chromium (Debian's) with a fresh profile, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1500, "height": 1000})
        try:
            yield context
        finally:
            context.close()


def _wait_for(page, what: str, js: str, shot: Path, arg: object = None) -> None:
    """Poll ``js`` in the page until it is true; else fail naming ``what`` and any cell
    error, with a screenshot at ``shot``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(js, arg=arg, timeout=STEP_DEADLINE_S * 1000, polling=250)
    except PlaywrightTimeout:
        errors = cell_errors(page)
        page.screenshot(path=shot)
        pytest.fail(f"{what}: not seen within {STEP_DEADLINE_S} s"
                    + (f"; cell errors: {'; '.join(errors)}" if errors else "")
                    + f"; screenshot: {shot}", pytrace=False)


def cell_errors(page) -> list[str]:
    """Each cell that shows an error: its number, prompt, first source line and the error."""
    return page.evaluate(CELL_ERRORS_JS)


def assert_no_cell_errors(page) -> None:
    errors = cell_errors(page)
    assert not errors, "a cell failed: " + "; ".join(errors)


def _wait_kernel_idle(lab: Lab, name: str) -> None:
    """Until the lab reports a session for ``name`` whose kernel (``pqlab``) is idle."""
    deadline = time.monotonic() + STEP_DEADLINE_S
    while time.monotonic() < deadline:
        for session in lab.api("sessions") or []:
            kernel = session.get("kernel") or {}
            if session["path"].endswith(name) and kernel.get("execution_state") == "idle":
                assert kernel["name"] == config.KERNEL_NAME, kernel
                return
        time.sleep(0.25)
    pytest.fail(f"no idle kernel for {name} within {STEP_DEADLINE_S} s:\n{lab.log_tail()}")


def open_and_run_all(browser, lab: Lab, name: str, shot: Path):
    """Open ``notebooks/<name>`` in the lab, wait for its kernel, Run > Run All Cells."""
    page = browser.new_page()
    page.goto(lab.url(f"lab/tree/{name}", "reset&"))  # only this notebook open
    _wait_kernel_idle(lab, name)
    _wait_for(page, f"{name} open with an idle kernel",
              "() => document.querySelector("
              "'.jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status=\"idle\"]')", shot)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
    return page


FIGURES_JS = """
() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img[class*="pqlab-figure-"]'))
  .filter(img => img.src && img.naturalWidth > 0).length === 3
"""


def test_the_explorer_runs_in_the_lab_and_redraws_when_a_control_changes(browser, lab,
                                                                        tmp_path):
    shot = tmp_path / "timeout.png"
    page = open_and_run_all(browser, lab, "explore.ipynb", shot)
    _wait_for(page, "the explorer's three figures", f"() => ({FIGURES_JS})() || "
              f"({CELL_ERRORS_JS})().length > 0", shot)
    assert_no_cell_errors(page)
    caption = page.locator(".pqlab-caption").inner_text()
    assert "2,000 tasks" in caption and "ops/s" in caption, caption
    latency = page.locator("img.pqlab-figure-latency").get_attribute("src")
    page.locator(".pqlab-caption").scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "explorer-first-run.png")

    tasks = page.locator(".pqlab-tasks input")
    tasks.fill("3000")
    tasks.press("Enter")
    page.locator("button.pqlab-run").click()
    _wait_for(page, "the caption and the latency figure after Run with 3,000 tasks",
              "([src]) => { const c = document.querySelector('.pqlab-caption');"
              " const img = document.querySelector('img.pqlab-figure-latency');"
              " return c && c.innerText.includes('3,000 tasks') && img.src !== src"
              " && img.naturalWidth > 0; }", shot, [latency])
    assert_no_cell_errors(page)
    page.locator("img.pqlab-figure-latency").scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "explorer-after-run.png")
    assert (tmp_path / "explorer-after-run.png").stat().st_size > 10_000
    page.close()


def test_a_broken_cell_is_reported_by_name(browser, lab, tmp_path):
    shot = tmp_path / "timeout.png"
    page = open_and_run_all(browser, lab, "broken.ipynb", shot)
    _wait_for(page, "the broken cell's error", f"() => ({CELL_ERRORS_JS})().length > 0", shot)
    page.screenshot(path=tmp_path / "broken.png")
    errors = cell_errors(page)
    assert len(errors) == 1, errors
    assert errors[0].startswith("cell 2 [1]:") and BROKEN_SOURCE in errors[0], errors
    assert "RuntimeError: a deliberately broken cell" in errors[0]
    with pytest.raises(AssertionError, match="cell 2 .*deliberately broken"):
        assert_no_cell_errors(page)
    page.close()
