"""Do the kit's py:percent notebooks open as notebooks in JupyterLab? (`make lab-check`; not CI)

Starts the environment's `jupyter lab` on a free local port (token, no browser, temporary runtime,
config, settings and workspace dirs, root dir = the repository), then opens each notebooks/0*.py in
headless Chromium with the URL a double-click uses (/lab/tree/<path>: the default factory for the file
type), waits until JupyterLab has rendered it, saves a screenshot per notebook and looks at the DOM: a
`jp-NotebookPanel` with cells is a notebook; a `jp-FileEditor` means the file opened as text, i.e. the
default viewer for Python files is not jupytext's "Jupytext Notebook" (`make setup` installs it into the
venv). Chromium is driven over its DevTools protocol with tornado's websocket client (tornado comes with
jupyter_server), so nothing else needs installing.

    .venv/bin/python scripts/lab_check.py [--out reports/lab_check] [--chromium /usr/bin/chromium]

Exit 0: every notebook opened as a notebook. Exit 1: at least one did not (each is named). Exit 2: the
check itself could not run (no Chromium, the server did not start).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parents[1]
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"
WIDTH, HEIGHT = 1400, 1000

# What the current main-area tab holds. Each notebook opens in its own fresh workspace, so the open
# document is the only one; the tab label still has to be the file's name.
PROBE = """(() => {
  const tab = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel');
  return {
    label: tab ? tab.textContent : null,
    notebook: document.querySelectorAll('#jp-main-dock-panel .jp-NotebookPanel').length,
    cells: document.querySelectorAll('#jp-main-dock-panel .jp-NotebookPanel .jp-Cell').length,
    markdown: document.querySelectorAll('#jp-main-dock-panel .jp-NotebookPanel .jp-MarkdownOutput').length,
    editor: document.querySelectorAll('#jp-main-dock-panel .jp-FileEditor').length,
    kernel: (document.querySelector('#jp-main-dock-panel .jp-Notebook-ExecutionIndicator') || {dataset: {}})
      .dataset.status || null,
  };
})()"""


class CheckError(Exception):
    """The check could not run (exit 2)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def start_lab(jupyter: Path, tmp: Path, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab with everything per-user in `tmp`: only the environment's own settings count."""
    settings = tmp / "user-settings"
    # no news toast over the screenshots
    notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # JupyterLab marks a freshly opened jupytext notebook modified; never save it back to notebooks/*.py
    docmanager = settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    docmanager.parent.mkdir(parents=True)
    docmanager.write_text(json.dumps({"autosave": False}))
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    cmd = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
           "--LabApp.news_url=None",
           "--LabApp.extension_manager=readonly",  # nothing asks PyPI
           "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers; the server listens on 127.0.0.1 with a token
        cmd.append("--allow-root")
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_for_lab(proc: subprocess.Popen, base: str, token: str, timeout: float) -> None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise CheckError(f"jupyter lab exited with {proc.returncode} before it served")
        try:
            http_json(f"{base}/api/status?token={token}", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    raise CheckError(f"jupyter lab did not answer on {base} within {timeout:.0f} s")


def python_default_viewer(base: str, token: str) -> str | None:
    """The server's effective default viewer for Python files (None: JupyterLab's own, the editor)."""
    try:
        s = http_json(f"{base}/lab/api/settings/{DOCMANAGER}?token={token}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CheckError(f"could not read the {DOCMANAGER} settings from {base}: {exc}") from None
    # labconfig overrides change the schema's default; user settings (none here) would come on top
    user = (s.get("settings") or {}).get("defaultViewers", {})
    default = s.get("schema", {}).get("properties", {}).get("defaultViewers", {}).get("default", {})
    return {**default, **user}.get("python")


def start_chromium(chromium: str, tmp: Path, log) -> tuple[subprocess.Popen, str]:
    """Headless Chromium with a fresh profile; returns it and its DevTools browser websocket URL."""
    profile = tmp / "chromium-profile"
    # without the background-networking switches Chromium's own connections are refused on a closed network
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--disable-extensions", f"--user-data-dir={profile}",
           f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-port=0", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    port_file = profile / "DevToolsActivePort"
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise CheckError(f"{chromium} exited with {proc.returncode} at start")
        if port_file.is_file():
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return proc, f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.2)
    raise CheckError(f"{chromium} did not open its DevTools port within 30 s")


def save_png(data: bytes, path: Path) -> None:
    """Write the screenshot; with Pillow (the kit's venv has it, via matplotlib) as a 128-colour PNG,
    a third of the size and still sharp for a UI."""
    try:
        from PIL import Image
    except ImportError:
        path.write_bytes(data)
        return
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


class DevTools:
    """The few DevTools protocol calls this check needs, over one browser-level websocket."""

    def __init__(self, ws):
        self.ws, self.n = ws, 0

    async def call(self, method: str, session: str | None = None, **params):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        await self.ws.write_message(json.dumps(msg))
        while True:  # events of the attached page are skipped
            raw = await self.ws.read_message()
            if raw is None:
                raise CheckError("Chromium closed the DevTools connection")
            r = json.loads(raw)
            if r.get("id") == self.n:
                if "error" in r:
                    raise CheckError(f"DevTools {method}: {r['error']}")
                return r["result"]


def expected_cells(nb: Path) -> tuple[int, int]:
    """(cells, markdown cells) of the notebook as jupytext reads it: what JupyterLab must show."""
    import jupytext

    cells = jupytext.read(nb).cells
    return len(cells), sum(c.cell_type == "markdown" for c in cells)


async def open_one(dt: DevTools, url: str, nb: Path, shot: Path, timeout: float, settle: float) -> tuple[bool, str]:
    """Open `url` in a new tab; (True, what) when `nb` is a rendered notebook there, else (False, why).

    Done: the tab is the file's and either a text editor, or a notebook with all its cells and rendered
    markdown and an idle kernel, and the page has not changed for `settle` seconds. The kernel is waited
    for only until the timeout (a notebook without a kernel still opened as a notebook).
    """
    n_cells, n_md = expected_cells(nb)
    target = (await dt.call("Target.createTarget", url="about:blank"))["targetId"]
    session = (await dt.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
    try:
        await dt.call("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=HEIGHT,
                      deviceScaleFactor=1, mobile=False)
        await dt.call("Page.navigate", session, url=url)
        t_end, last, since, seen = time.monotonic() + timeout, None, time.monotonic(), {}
        while time.monotonic() < t_end:
            await asyncio.sleep(0.5)
            r = await dt.call("Runtime.evaluate", session, expression=PROBE, returnByValue=True)
            seen = r.get("result", {}).get("value") or {}
            if seen != last:
                last, since = seen, time.monotonic()
                continue
            if time.monotonic() - since < settle or seen.get("label") != nb.name:
                continue
            if seen["editor"]:
                break
            if seen["notebook"] and seen["cells"] >= n_cells and seen["markdown"] >= n_md \
                    and seen["kernel"] == "idle":
                break
        png = (await dt.call("Page.captureScreenshot", session, format="png"))["data"]
        save_png(base64.b64decode(png), shot)
    finally:
        await dt.call("Target.closeTarget", targetId=target)
    if seen.get("label") != nb.name:
        return False, f"no tab named {nb.name} after {timeout:.0f} s (page state: {seen})"
    if seen.get("editor"):
        return False, "opened in the text editor (jp-FileEditor), not as a notebook"
    if not seen.get("notebook") or seen.get("cells", 0) < n_cells or seen.get("markdown", 0) < n_md:
        return False, (f"not rendered as a notebook of {n_cells} cells ({n_md} markdown) after {timeout:.0f} s "
                       f"(page state: {seen})")
    return True, f"notebook, {seen['cells']} cells ({seen['markdown']} markdown rendered), kernel {seen['kernel']}"


async def check_all(ws_url: str, base: str, token: str, notebooks: list[Path], out: Path,
                    timeout: float, settle: float) -> list[tuple[Path, bool, str]]:
    dt = DevTools(await websocket_connect(ws_url, max_message_size=64 * 2**20))
    results = []
    for nb in notebooks:
        rel = nb.relative_to(ROOT).as_posix()
        # its own workspace per notebook: the one open document is this one (nothing restored)
        url = f"{base}/lab/workspaces/lab-check-{nb.stem}/tree/{rel}?token={token}"
        shot = out / f"{nb.stem}.png"
        ok, what = await open_one(dt, url, nb, shot, timeout, settle)
        print(f"  {'ok  ' if ok else 'FAIL'} {rel}: {what} -> {shot}", flush=True)
        results.append((nb, ok, what))
    dt.ws.close()
    return results


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "reports" / "lab_check"), help="screenshots go here")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--jupyter", default=str(Path(sys.executable).parent / "jupyter"),
                    help="the jupyter of the environment to check (default: next to this python)")
    ap.add_argument("--pattern", default="notebooks/0*.py", help="notebooks to open, relative to the repo")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds per notebook (server start: 2x)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds the page must stay unchanged")
    args = ap.parse_args(argv)

    chromium = shutil.which(args.chromium)
    if chromium is None:
        print(f"lab-check: no Chromium at {args.chromium}; on Debian/Ubuntu: sudo apt-get install -y chromium",
              file=sys.stderr)
        return 2
    if not Path(args.jupyter).is_file():
        print(f"lab-check: no {args.jupyter}; run `make setup` first", file=sys.stderr)
        return 2
    notebooks = sorted(ROOT.glob(args.pattern))
    if not notebooks:
        print(f"lab-check: nothing matches {args.pattern} under {ROOT}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    lab = browser = None
    with tempfile.TemporaryDirectory(prefix="stccl-lab-check-") as t:
        tmp = Path(t)
        lab_log, browser_log = tmp / "jupyter-lab.log", tmp / "chromium.log"
        try:
            with open(lab_log, "wb") as llog, open(browser_log, "wb") as blog:
                lab = start_lab(Path(args.jupyter), tmp, port, token, llog)
                wait_for_lab(lab, base, token, 2 * args.timeout)
                viewer = python_default_viewer(base, token)
                print(f"lab-check: {args.jupyter} lab on {base}; default viewer for Python files: "
                      f"{viewer or 'none set (JupyterLab opens .py in the editor)'}", flush=True)
                browser, ws_url = start_chromium(chromium, tmp, blog)
                results = asyncio.run(check_all(ws_url, base, token, notebooks, out, args.timeout, args.settle))
        except CheckError as exc:
            print(f"lab-check: could not run: {exc}", file=sys.stderr)
            for log in (lab_log, browser_log):
                if log.is_file() and log.stat().st_size:
                    print(f"--- last lines of {log.name}:\n" + "\n".join(log.read_text(errors="replace")
                                                                      .splitlines()[-20:]), file=sys.stderr)
            return 2
        finally:
            stop(browser)
            stop(lab)

    bad = [(nb, what) for nb, ok, what in results if not ok]
    if bad:
        print(f"lab-check: FAILED: {len(bad)} of {len(results)} notebooks did not open as notebooks "
              f"on double-click:", file=sys.stderr)
        for nb, what in bad:
            print(f"  {nb.relative_to(ROOT)}: {what}", file=sys.stderr)
        if viewer != "Jupytext Notebook":
            print("  The JupyterLab default viewer for Python files is not 'Jupytext Notebook'. `make setup` "
                  "writes it into the venv (etc/jupyter/labconfig/default_setting_overrides.json); run it again.",
                  file=sys.stderr)
        return 1
    print(f"lab-check: all {len(results)} notebooks open as notebooks; screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
