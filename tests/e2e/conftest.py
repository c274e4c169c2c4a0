"""Browser tests: JupyterLab and formgrader driven through Debian's chromium with Playwright.

Each module starts its own JupyterLab (module scope: the scenarios of a module share the startup) on
127.0.0.1, a free port and a random token, in a temporary copy of the course; it is stopped at the end
(terminate, then kill). Screenshots of each step's end state go to ``build/e2e/`` in the checkout, with
an ``index.html`` listing them.

Without /usr/bin/chromium (or ``LEPTON_CHROMIUM``) or the ``playwright`` package the tests are skipped,
except on CI (``CI`` set), where they fail.
"""
from __future__ import annotations

import html
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

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "build" / "e2e"
CHROMIUM = os.environ.get("LEPTON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
KERNEL_TIMEOUT = int(float(os.environ.get("LEPTON_E2E_KERNEL_TIMEOUT", "240")) * 1000)   # ms: kernel work on 2 busy cores
UI_TIMEOUT = 30_000        # ms: the page reacting to a click


def on_ci() -> bool:
    value = os.environ.get("CI", "")
    return bool(value.strip()) and value.strip().lower() not in ("0", "false", "no")


def browser_problem() -> str:
    """Why the browser tests cannot run here ('' when they can)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no chromium at {CHROMIUM} (run `make browser`, or set LEPTON_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.lock)"
    return ""


@pytest.fixture(scope="session")
def browser():
    problem = browser_problem()
    if problem:
        if on_ci():
            pytest.fail(f"CI: the browser tests cannot run: {problem}", pytrace=False)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.when == "call":
        item.e2e_failed = report.failed


@pytest.fixture
def page(browser, request):
    """A fresh browser page; when the test fails, its last state is saved as build/e2e/failed-<test>.png."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT)
    pg = context.new_page()
    yield pg
    if getattr(request.node, "e2e_failed", False):
        SHOTS.mkdir(parents=True, exist_ok=True)
        try:
            pg.screenshot(path=str(SHOTS / f"failed-{request.node.name}.png"))
        except Exception:  # noqa: BLE001 - a failed screenshot must not hide the test's failure
            pass
    context.close()


# --- screenshots and their index ----------------------------------------------------------------------

def shot(page, name: str, caption: str) -> Path:
    """Save a screenshot of ``page`` as build/e2e/<name>.png and list it in build/e2e/index.html."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    listing = SHOTS / "shots.json"
    entries = json.loads(listing.read_text()) if listing.exists() else {}
    entries[name] = caption
    listing.write_text(json.dumps(entries, indent=1, sort_keys=True))
    items = "\n".join(
        f'<figure><a href="{html.escape(n)}.png"><img src="{html.escape(n)}.png" width="700" alt="{html.escape(c)}"></a>'
        f"<figcaption><b>{html.escape(n)}</b>: {html.escape(c)}</figcaption></figure>"
        for n, c in sorted(entries.items()) if (SHOTS / f"{n}.png").exists())
    (SHOTS / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Lepton Kit: browser tests</title>\n"
        "<style>body{font-family:sans-serif;margin:2em}figure{margin:0 0 2em}img{border:1px solid #ccc}</style>\n"
        "<h1>Browser tests (tests/e2e): the end state of each step</h1>\n" + items + "\n")
    return path


# --- JupyterLab servers -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server in ``root``: ``url(path)`` adds the token; ``stop()`` leaves nothing running."""

    def __init__(self, root: Path, home: Path, env: dict | None = None, drop_env=("LEPTON_PROGRESS",)):
        self.root, self.port, self.token = Path(root), free_port(), secrets.token_hex(16)
        home.mkdir(parents=True, exist_ok=True)
        settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        # no news or update checks (offline), no restored workspace
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        # every cell in the DOM (no lazy rendering), so that prompts and outputs can be read
        notebook = home / "lab-settings" / "@jupyterlab" / "notebook-extension"
        notebook.mkdir(parents=True, exist_ok=True)
        (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        config = home / "config"
        config.mkdir(exist_ok=True)
        (config / "jupyter_server_config.py").write_text(
            "c.LabApp.news_url = None\n"
            "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n")
        full_env = {k: v for k, v in os.environ.items() if k not in drop_env and not k.startswith("PYTEST_")}
        full_env.update({"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
                         "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
                         "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
                         "IPYTHONDIR": str(home / "ipython"), "MPLCONFIGDIR": str(home / "mpl")})
        full_env.update(env or {})
        args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                "--ServerApp.port_retries=0", f"--ServerApp.token={self.token}",
                f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")
        self.log = home / "lab.log"
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(args, cwd=self.root, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def authorize(self, page):
        """Send the token with every request of ``page``'s context: formgrader's pages call its API with
        AJAX, which a token in the page's URL alone does not authenticate (the API answers 302 to /login)."""
        page.context.set_extra_http_headers({"Authorization": f"token {self.token}"})

    def api(self, path: str, method: str = "GET", body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path.lstrip('/')}", data=data, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
        return json.loads(text) if text else None

    def _wait(self, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if "started" in self.api("api/status"):
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"JupyterLab did not answer /api/status within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)   # the server and the kernels it started
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)       # whatever of the group is left
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=15)
        self._log.close()


@pytest.fixture(scope="module")
def start_lab(tmp_path_factory, browser):  # browser first: skipped (or failed on CI) before any server starts
    """``start_lab(root, **kw)``: a JupyterLab server in ``root``, stopped when the module ends."""
    labs = []

    def start(root, env=None, name="lab"):
        lab = Lab(root, tmp_path_factory.mktemp(f"{name}-home"), env=env)
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        lab.stop()


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dst


# --- driving JupyterLab -------------------------------------------------------------------------------

def open_notebook(page, lab: Lab, path: str):
    """Open ``path`` (relative to the server's root) in JupyterLab and wait for an idle kernel."""
    page.goto(lab.url(f"lab/tree/{path}?reset"))  # reset: not the workspace an earlier page left
    panel = page.locator(".jp-NotebookPanel:visible").first
    panel.locator(".jp-Cell").first.wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    return panel


def wait_idle(page, timeout: int = KERNEL_TIMEOUT):
    """Wait for the current notebook's kernel to be connected and idle. The toolbar's execution indicator
    alone says idle before the kernel is connected, and a cell run then is silently skipped (JupyterLab's
    CodeCell.execute needs the session's kernel)."""
    page.wait_for_function(
        """() => {
            const el = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
            const kernel = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;
            return el && el.getAttribute('data-status') === 'idle'
                && kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
        }""", timeout=timeout, polling=200)


def wait_run_done(page, timeout: int = KERNEL_TIMEOUT):
    """Wait until no cell of the visible notebook is queued or running ([*]) and the kernel is idle."""
    page.wait_for_function(
        """() => {
            const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!nb) return false;
            const ind = nb.querySelector('.jp-Notebook-ExecutionIndicator');
            if (!ind || ind.getAttribute('data-status') !== 'idle') return false;
            return ![...nb.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
        }""", timeout=timeout, polling=250)


def type_into_cell(page, text: str):
    """Type ``text`` into the focused cell editor, then wait until the cell's model holds it (the editor
    updates the model asynchronously: a run started at once can send the old source)."""
    page.keyboard.insert_text(text)
    page.wait_for_function(
        """text => {
            const cell = window.jupyterapp?.shell?.currentWidget?.content?.activeCell;
            return cell && cell.model.sharedModel.getSource().trim() === text.trim();
        }""", arg=text, timeout=UI_TIMEOUT, polling=100)


def click_command(page, command: str):
    """Click the visible toolbar button (or menu item) that runs JupyterLab's ``command``."""
    page.locator(f'.jp-NotebookPanel:visible [data-command="{command}"]').first.click()


def restart_and_run_all(page):
    """The toolbar's Restart Kernel and Run All Cells…, confirmed in its dialog; waits until the run ends."""
    click_command(page, "notebook:restart-run-all")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    # the restart clears the prompts; the run has started once a cell is queued or has run
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt')]
                 .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))""", timeout=60_000, polling=100)
    wait_run_done(page)
