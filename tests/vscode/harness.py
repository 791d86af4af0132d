"""A real VS Code for end-to-end tests: code-server plus a Playwright-driven chromium.

`CodeServer` runs code-server (installed by tools/code-server/install.sh, `TOOLS`) with its own
user-data, extensions and XDG directories, so a test run never reads or writes the
machine's VS Code state. `VSCode` is the browser side: each method is one request to
driver.mjs (a Node process that owns the Playwright page), answered as one JSON line.
Every step's duration is kept in `timings` so slow steps show up in the test log.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client-vscode"
# Where tools/code-server/install.sh puts code-server, Node 24 and playwright-core.
TOOLS = Path(
    os.environ.get("ZI_CODE_SERVER_DIR") or Path.home() / ".cache" / "zi-coder" / "code-server"
)
CODE_SERVER = TOOLS / "node_modules" / ".bin" / "code-server"
NODE = TOOLS / "bin" / "node"
DRIVER = Path(__file__).with_name("driver.mjs")
# code-server's log line for the address it bound (we ask for port 0).
LISTENING = re.compile(r"HTTP server listening on (http://\S+?)/?\s")

# Settings that make the editor deterministic under a typing robot: no welcome page or
# trust prompt, no word-based suggest widget to steal Tab/Enter from the inline suggestion,
# no auto-closed brackets or quotes changing what was typed.
BASE_SETTINGS: dict[str, Any] = {
    "security.workspace.trust.enabled": False,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    # The Chat view would take a third of the window in every screenshot.
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    # The built-in Copilot/Chat: unused, and one more inline-completion client.
    "chat.disableAIFeatures": True,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "update.mode": "none",
    "editor.inlineSuggest.enabled": True,
    "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
    "editor.suggestOnTriggerCharacters": False,
    "editor.wordBasedSuggestions": "off",
    "editor.autoClosingBrackets": "never",
    "editor.autoClosingQuotes": "never",
    "editor.acceptSuggestionOnEnter": "off",
    "files.autoSave": "off",
    # A language server's port would pop up an "application running on port" toast.
    "remote.autoForwardPorts": False,
}


class Timings:
    """Wall-clock seconds per named step, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    def add(self, name: str, seconds: float) -> None:
        self.steps.append((name, seconds))

    def report(self) -> str:
        return "\n".join(f"{seconds * 1000:8.0f} ms  {name}" for name, seconds in self.steps)


def tools_installed() -> bool:
    return CODE_SERVER.exists() and NODE.exists()


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("chromium is not on PATH: run tools/code-server/install.sh")
    return found


def tools_env(home: Path) -> dict[str, str]:
    """Node 24 first on PATH (code-server requires it); XDG dirs kept inside the run."""
    env = dict(os.environ)
    env["PATH"] = f"{NODE.parent}{os.pathsep}{env.get('PATH', '')}"
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env[var] = str(home / var.lower())
    return env


def poll(read: Callable[[], T], what: str, timeout: float = 10, interval: float = 0.05) -> T:
    """`read()` until it returns something truthy (returned), or TimeoutError naming `what`
    and the last value read."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s (last read: {value!r})")
        time.sleep(interval)


# What goes into client-vscode's .vsix (see its .vscodeignore and esbuild.mjs): a newer
# file than the .vsix means it is stale.
EXTENSION_SOURCES = (
    "src",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "esbuild.mjs",
    "README.md",
    "CHANGELOG.md",
    ".vscodeignore",
)


def extension_vsix() -> Path:
    """Where `npm run package` writes the extension's .vsix (its name has the version)."""
    version = json.loads((CLIENT / "package.json").read_text())["version"]
    return CLIENT / f"zi-coder-{version}.vsix"


def extension_vsix_is_stale() -> bool:
    vsix = extension_vsix()
    if not vsix.exists():
        return True
    built = vsix.stat().st_mtime
    for name in EXTENSION_SOURCES:
        path = CLIENT / name
        files = path.rglob("*") if path.is_dir() else [path]
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return True
    return False


def build_extension(log: Path) -> Path:
    """client-vscode's .vsix, packaged (`npm run package`) if missing or stale.

    `npm ci` runs first only when node_modules is missing. npm's output goes to `log`.
    """
    if not extension_vsix_is_stale():
        return extension_vsix()
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not on PATH: it builds client-vscode's .vsix")
    steps = [[npm, "run", "package"]]
    if not (CLIENT / "node_modules").is_dir():
        steps.insert(0, [npm, "ci"])
    with log.open("a") as out:
        for step in steps:
            out.write(f"$ {' '.join(step[1:])}\n")
            out.flush()
            done = subprocess.run(
                step, cwd=CLIENT, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"npm {' '.join(step[1:])} failed: see {log}")
    vsix = extension_vsix()
    if extension_vsix_is_stale():
        raise RuntimeError(f"npm run package did not write {vsix.name}: see {log}")
    return vsix


class CodeServer:
    """code-server on a free port with fresh state under `home`; stop() ends its group."""

    def __init__(
        self, home: Path, workspace: Path, *, settings: dict[str, Any] | None = None
    ) -> None:
        self.home = home
        self.workspace = workspace
        self.user_data = home / "user-data"
        self.extensions = home / "extensions"
        self.log_path = home / "code-server.log"
        self.url = ""
        self.timings = Timings()
        self._proc: subprocess.Popen[bytes] | None = None
        self.extensions.mkdir(parents=True, exist_ok=True)
        # An empty config file: otherwise code-server writes ~/.config/code-server/config.yaml.
        self.config = home / "config.yaml"
        self.config.write_text("")
        # code-server is a remote window: settings of scope "machine" or
        # "machine-overridable" (such as an executable's path) are read from the Machine
        # settings, and ignored in the User settings. Both get the same.
        text = json.dumps({**BASE_SETTINGS, **(settings or {})}, indent=2)
        for scope in ("User", "Machine"):
            (self.user_data / scope).mkdir(parents=True, exist_ok=True)
            (self.user_data / scope / "settings.json").write_text(text)
        self.env = tools_env(home)

    def _base_args(self) -> list[str]:
        return [
            str(CODE_SERVER),
            "--user-data-dir", str(self.user_data),
            "--extensions-dir", str(self.extensions),
            "--config", str(self.config),
        ]  # fmt: skip

    def install_extension(self, vsix: Path) -> str:
        """`code-server --install-extension`: the path a user takes with a .vsix."""
        started = time.monotonic()
        done = subprocess.run(
            [*self._base_args(), "--install-extension", str(vsix)],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        self.timings.add(f"install {vsix.name}", time.monotonic() - started)
        if done.returncode != 0 or "successfully installed" not in done.stdout:
            raise RuntimeError(f"installing {vsix} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, *, extra_args: Sequence[str] = (), timeout: float = 60) -> str:
        """Start and wait for /healthz; port 0 lets the OS pick, the log tells which."""
        started = time.monotonic()
        log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [
                *self._base_args(),
                "--auth", "none",
                "--bind-addr", "127.0.0.1:0",
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                *extra_args,
                str(self.workspace),
            ],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
            # Its own process group: stop() also ends the extension host and the servers
            # extensions start (zi-coder serve), which outlive code-server otherwise.
            start_new_session=True,
        )  # fmt: skip
        deadline = started + timeout
        while not self.url:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"code-server did not start:\n{self.log_path.read_text()}")
            found = LISTENING.search(self.log_path.read_text())
            if found:
                self.url = found.group(1)
            else:
                time.sleep(0.05)
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.timings.add("code-server start (healthz)", time.monotonic() - started)
        return self.url

    def extension_logs(self) -> list[Path]:
        """Log files of extensions' output channels: logs/<session>/exthost*/<id>/<name>.log."""
        return sorted((self.user_data / "logs").glob("*/exthost*/*/*.log"))

    def extension_log(self, extension_id: str, channel: str) -> str:
        """The text of an extension's output channel (one created with `{log: true}`)."""
        return "".join(
            path.read_text(errors="replace")
            for path in self.extension_logs()
            if path.parent.name == extension_id and path.name == f"{channel}.log"
        )

    def workbench_url(self) -> str:
        return f"{self.url}/?folder={quote(str(self.workspace))}"

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGTERM)
            self._proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self._proc = None


class DriverError(RuntimeError):
    pass


@dataclass(frozen=True)
class Notification:
    """A toast: its message and its buttons' labels, in order."""

    message: str
    buttons: list[str]


class VSCode:
    """The workbench in chromium, one method per user action (see driver.mjs)."""

    def __init__(self, server: CodeServer, artifacts: Path, *, timeout: float = 30) -> None:
        self.server = server
        self.artifacts = artifacts
        self.timeout = timeout
        self.timings = server.timings
        self._ids = 0
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._driver_log = (artifacts / "driver.log").open("wb")
        self._proc = subprocess.Popen(
            [str(NODE), str(DRIVER)],
            env={**server.env, "ZI_TOOLS_DIR": str(TOOLS)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._driver_log,
        )  # fmt: skip
        # A reader thread, so a request can time out instead of blocking on readline().
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._answers.put(json.loads(line))
        self._answers.put(None)

    def call(self, cmd: str, *, timeout: float | None = None, **args: Any) -> Any:
        """One request to the driver, its waits bounded by `timeout` seconds.

        A failure screenshots the page (failed-CMD.png) before raising.
        """
        assert self._proc.stdin is not None
        timeout = timeout or self.timeout
        self._ids += 1
        request = {"id": self._ids, "cmd": cmd, "args": {**args, "timeout": timeout * 1000}}
        started = time.monotonic()
        self._proc.stdin.write(json.dumps(request).encode() + b"\n")
        self._proc.stdin.flush()
        try:
            answer = self._answers.get(timeout=timeout + 10)
        except queue.Empty:
            raise DriverError(f"{cmd}: no answer from the driver") from None
        if answer is None:
            raise DriverError(f"{cmd}: the driver exited (see {self.artifacts / 'driver.log'})")
        label = " ".join([cmd, *(repr(v)[:40] for v in args.values() if v is not None)])
        self.timings.add(label, time.monotonic() - started)
        if not answer["ok"]:
            if cmd != "screenshot":
                with contextlib.suppress(DriverError):
                    self.call("screenshot", timeout=10, name=f"failed-{cmd}")
            raise DriverError(f"{cmd}: {answer['error']}")
        return answer["result"]

    # -- the helpers tests use ---------------------------------------------------------

    def open(self, timeout: float = 90) -> None:
        """Load the workbench on the workspace folder and wait until it is usable."""
        ms = self.call(
            "launch", timeout=timeout, url=self.server.workbench_url(),
            artifacts=str(self.artifacts), executablePath=chromium_path(),
        )  # fmt: skip
        # Milestones since the launch began: browser up, page loaded, workbench, explorer.
        for name, value in ms.items():
            self.timings.add(f"  launch: {name} at", value / 1000)

    def open_file(self, relative: str) -> None:
        """Quick Open (Ctrl+P) by path relative to the workspace; the editor gets focus."""
        self.call("open_file", file=relative)

    def goto(self, line: int, column: int = 1) -> None:
        """Cursor to a 1-based line and column (Ctrl+G)."""
        self.call("goto", line=line, column=column)

    def type_text(self, text: str, delay_ms: int = 30) -> None:
        self.call("type_text", text=text, delay=delay_ms)

    def press(self, key: str) -> None:
        """A Playwright key name: "Tab", "Control+ArrowRight", "Escape"..."""
        self.call("press", key=key)

    def wait_for_ghost_text(self, expected: str | None = None, timeout: float | None = None) -> str:
        """The inline suggestion's visible text, once one shows (and reads `expected`)."""
        return str(self.call("wait_for_ghost_text", timeout=timeout, expected=expected))

    def ghost_text(self) -> str:
        """The inline suggestion's visible text now, "" when none shows (no waiting)."""
        return str(self.call("ghost_text"))

    def wait_for_no_ghost_text(self, timeout: float | None = None) -> None:
        self.call("wait_for_no_ghost_text", timeout=timeout)

    def editor_text(self) -> str:
        """The active editor's rendered lines, ghost text excluded (small files only)."""
        return str(self.call("editor_text"))

    def wait_for_editor_text(self, expected: str, timeout: float | None = None) -> str:
        """editor_text() once it reads `expected`, e.g. after an edit made by a server."""
        return str(self.call("wait_for_editor_text", timeout=timeout, expected=expected))

    def wait_for_editor_text_containing(self, contains: str, timeout: float | None = None) -> str:
        """editor_text() once it contains `contains`: for documents without a file, such as
        an untitled one a command opened."""
        return str(self.call("wait_for_editor_text_containing", timeout=timeout, contains=contains))

    def active_tab(self, contains: str = "", timeout: float | None = None) -> str:
        """The active editor tab's label, once it contains `contains`."""
        return str(self.call("active_tab", timeout=timeout, contains=contains))

    def webview_text(self, contains: str = "", timeout: float | None = None) -> str:
        """The active webview's text (e.g. a Markdown preview), once it contains `contains`."""
        return str(self.call("webview_text", timeout=timeout, contains=contains))

    def save(self) -> None:
        """Ctrl+S, returning once the tab is no longer dirty."""
        self.call("save")

    def file_text(self, relative: str) -> str:
        return (self.server.workspace / relative).read_text()

    def screenshot(self, name: str) -> Path:
        return Path(self.call("screenshot", name=name))

    def problems_panel_text(self, contains: str = "", timeout: float | None = None) -> list[str]:
        """Rows of the Problems view once one contains `contains`; focus moves there."""
        return list(self.call("problems", timeout=timeout, contains=contains))

    def focus_editor(self) -> None:
        """Focus back on the editor (Ctrl+1), its cursor unmoved."""
        self.call("focus_editor")

    def hover_text(self, timeout: float | None = None, screenshot: str | None = None) -> str:
        """The hover at the cursor (Ctrl+K Ctrl+I), e.g. a diagnostic's message.

        `screenshot`: the name of a screenshot taken while the hover shows.
        """
        return str(self.call("hover_text", timeout=timeout, shot=screenshot))

    def apply_quick_fix(
        self, title: str, timeout: float | None = None, screenshot: str | None = None
    ) -> list[str]:
        """Ctrl+. at the cursor, choose the action containing `title`; returns all offered.

        `screenshot`: the name of a screenshot taken while the menu is open.
        """
        return list(self.call("apply_quick_fix", timeout=timeout, title=title, shot=screenshot))

    def run_command(self, title: str) -> None:
        """Run a command palette entry by its title."""
        self.call("run_command", title=title)

    def status_bar(self, contains: str = "", timeout: float | None = None) -> list[str]:
        """Status bar items' labels, once one contains `contains`."""
        return list(self.call("status_bar", timeout=timeout, contains=contains))

    def watch_status_bar(self) -> None:
        """Remember every status bar label shown from now on (see status_bar_seen)."""
        self.call("watch_status_bar")

    def status_bar_seen(self, contains: str = "", timeout: float | None = None) -> list[str]:
        """The status bar labels shown since watch_status_bar(), once one contains
        `contains`: a state that came and went (a restart's "starting") is in it, which
        `status_bar` can miss or read stale."""
        return list(self.call("status_bar_seen", timeout=timeout, contains=contains))

    def notifications(self) -> list[str]:
        return list(self.call("notifications"))

    def notification(self, contains: str, timeout: float | None = None) -> Notification:
        """The toast containing `contains`, once it shows: its message and button labels."""
        found = self.call("notification", timeout=timeout, contains=contains)
        return Notification(message=str(found["message"]), buttons=list(found["buttons"]))

    def click_notification_button(
        self, contains: str, button: str, timeout: float | None = None
    ) -> None:
        """Click `button` on the toast containing `contains` (the toast then closes)."""
        self.call("click_notification_button", timeout=timeout, contains=contains, button=button)

    def evaluate(self, body: str, arg: Any = None) -> Any:
        """Run a function body in the page (`arg` is its argument); returns its result."""
        return self.call("evaluate", body=body, arg=arg)

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(DriverError):
                self.call("close", timeout=10)
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._driver_log.close()
