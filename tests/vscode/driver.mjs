// Playwright driver for tests/vscode: one long-lived browser page on code-server's VS Code,
// driven by the Python harness (harness.py) with one JSON request per line on stdin and one
// JSON answer per line on stdout ({id, ok, result} or {id, ok: false, error}). Node, not
// Python, drives the browser because playwright-core is installed next to code-server by
// tools/code-server/install.sh: no second copy of Playwright in the Python lock.
//
// Every request's args.timeout (ms) becomes the page's default timeout for its waits.
// Selectors are VS Code 1.139's workbench DOM; each one is named once, here.
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const require = createRequire(path.join(process.env.ZI_TOOLS_DIR, "package.json"));
const { chromium } = require("playwright-core");

const SEL = {
  statusbar: ".monaco-workbench .part.statusbar",
  quickInput: ".quick-input-widget",
  quickInputRow: ".quick-input-widget .quick-input-list .monaco-list-row",
  activeEditor: ".editor-group-container.active .monaco-editor",
  activeTab: ".editor-group-container.active .tab.active",
  explorerRow: ".explorer-folders-view .monaco-list-row",
  viewLines: ".editor-group-container.active .monaco-editor .view-lines",
  // Inline suggestions: spans in the cursor's view line (.ghost-text-decoration; -preview
  // when the suggest widget previews) and, for multi-line text, view-zone lines below it
  // (.suggest-preview-text .view-line > span > .ghost-text).
  ghost: ".editor-group-container.active .monaco-editor :is(.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text)",
  markers: ".markers-panel",
  markersRow: ".markers-panel .monaco-list-row",
  hover: ".monaco-hover:not(.hidden) .monaco-hover-content",
  // Ctrl+. shows the action widget (code actions) since VS Code 1.80.
  actionRow: ".action-widget .monaco-list-row.action",
  actionWidget: ".action-widget",
  // The editor's own short messages ("No code actions available").
  editorMessage: ".monaco-editor-overlaymessage .message",
  statusItem: ".monaco-workbench .part.statusbar .statusbar-item",
  notification: ".notifications-toasts .notification-list-item",
  notificationMessage: ".notification-list-item-message",
  notificationButton: ".notification-list-item-buttons-container .monaco-button",
  // A webview (e.g. the Markdown preview) is an iframe holding the content's iframe.
  webviewContent: "iframe.webview.ready",
  webviewActiveFrame: "#active-frame",
};

// A new editor widget creates some of its contributions only when the window is first
// idle (at the latest 5 s later): the inline suggestion controller among them
// (`EditorContributionInstantiation.Eventually`). Text typed before that triggers no
// inline completion request at all, so a test typing right after opening a file would
// see ghost text only now and then. Idle callbacks run in the order they were
// requested, so once one requested now has run, the editor's have too (a timeout
// longer than the editor's 5 s keeps that order on a busy machine).
async function editorContributionsReady() {
  await page.evaluate(
    () => new Promise((resolve) => requestIdleCallback(() => resolve(), { timeout: 6000 })),
  );
}

// The suggestion's ghost text, read from the active editor (see wait_for_ghost_text).
function ghostText() {
  return page.$eval(SEL.activeEditor, (editor) => {
    const text = (els) => [...els].map((e) => e.textContent).join("");
    const inline = text(editor.querySelectorAll(
      ".view-lines .ghost-text-decoration, .view-lines .ghost-text-decoration-preview"));
    const below = [...editor.querySelectorAll(".suggest-preview-text .view-line")];
    return [inline, ...below.map((line) => line.textContent)].join("\n").replaceAll("\u00a0", " ");
  });
}

// The active editor's rendered lines, ghost text left out, in line order.
function editorText() {
  return page.$eval(SEL.viewLines, (el) => {
    const lines = [...el.querySelectorAll(".view-line")].map((line) => {
      const clone = line.cloneNode(true);
      clone.querySelectorAll("[class*=ghost-text]").forEach((g) => g.remove());
      return { top: parseFloat(line.style.top) || 0, text: clone.textContent };
    });
    // View lines are recycled DOM nodes: their order in the DOM is not the line order.
    lines.sort((a, b) => a.top - b.top);
    return lines.map((l) => l.text.replaceAll("\u00a0", " ")).join("\n");
  });
}

// Polls `read` (every 50 ms) until it returns `expected`, within the
// request's timeout; the error names what was read last.
async function waitForValue(read, expected, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await read();
    if (last === expected) return last;
    if (Date.now() > deadline) {
      throw new Error(`${what} is ${JSON.stringify(last)}, not ${JSON.stringify(expected)} after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let browser;
let page;
let timeoutMs = 30000;
let shotDir;
let shotCount = 0;

const commands = {
  // Launch chromium (Debian's; Playwright cannot download browsers here) and open VS Code.
  async launch({ url, artifacts, executablePath, timeout }) {
    shotDir = artifacts;
    const t0 = Date.now();
    const ms = {};
    browser = await chromium.launch({
      executablePath,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    ms.browser = Date.now() - t0;
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(timeout);
    // The page's own errors go to the driver log (stderr), which the harness keeps.
    page.on("console", (m) => m.type() === "error" && console.error("console:", m.text()));
    page.on("pageerror", (e) => console.error("pageerror:", e.message));
    await page.goto(url);
    ms.loaded = Date.now() - t0;
    await page.waitForSelector(SEL.statusbar, { state: "visible" });
    ms.workbench = Date.now() - t0;
    // The explorer lists the folder once the remote file system answers: the workbench is
    // usable from then on (keybindings resolve, Quick Open finds files).
    await page.waitForSelector(SEL.explorerRow, { state: "visible" });
    ms.explorer = Date.now() - t0;
    return ms;
  },

  // Quick Open (Ctrl+P), the path relative to the workspace, Enter; then the editor has focus.
  async open_file({ file }) {
    await page.keyboard.press("Control+P");
    await page.waitForSelector(SEL.quickInput, { state: "visible" });
    await page.keyboard.type(file);
    // Wait for the result list to match the typed name, or Enter opens a stale pick.
    const base = path.basename(file);
    await page.locator(SEL.quickInputRow, { hasText: base }).first().waitFor();
    await page.keyboard.press("Enter");
    await page.locator(SEL.activeTab, { hasText: base }).waitFor();
    await page.waitForSelector(`${SEL.activeEditor}.focused`);
    await editorContributionsReady();
    return null;
  },

  // Ctrl+G "line:column": positions the cursor without a mouse click (1-based).
  async goto({ line, column = 1 }) {
    await page.keyboard.press("Control+G");
    await page.waitForSelector(SEL.quickInput, { state: "visible" });
    await page.keyboard.type(`${line}:${column}`);
    await page.keyboard.press("Enter");
    await page.waitForSelector(SEL.quickInput, { state: "hidden" });
    return null;
  },

  async type_text({ text, delay = 30 }) {
    await page.keyboard.type(text, { delay });
    return null;
  },

  async press({ key }) {
    await page.keyboard.press(key);
    return null;
  },

  // The ghost text as the suggestion reads: the inline part (one span per syntax token, in
  // the cursor's view line), then a line for each preview line below (blank ones included).
  // With `expected`, waits until it reads exactly that (a partial accept re-renders it).
  async wait_for_ghost_text({ expected = null }) {
    await page.locator(SEL.ghost).first().waitFor({ state: "visible" });
    if (expected === null) return ghostText();
    return waitForValue(ghostText, expected, "ghost text");
  },

  // The ghost text showing now ("" when none), without waiting for one.
  async ghost_text() {
    if ((await page.locator(SEL.ghost).count()) === 0) return "";
    return ghostText();
  },

  async wait_for_no_ghost_text() {
    await page.locator(SEL.ghost).first().waitFor({ state: "detached" });
    return null;
  },

  // The active editor's rendered lines without ghost text: enough for the small files of
  // these tests (Monaco renders only the visible lines; use save + read the file otherwise).
  async editor_text() {
    return editorText();
  },

  // Waits until the active editor reads `expected` (e.g. once a quick fix's edit lands).
  async wait_for_editor_text({ expected }) {
    return waitForValue(editorText, expected, "editor text");
  },

  // Waits until the active editor's text contains `contains` (e.g. a document a command
  // opened, such as an untitled one, which has no file to read).
  async wait_for_editor_text_containing({ contains }) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      last = await editorText().catch(() => "");
      if (last.includes(contains)) return last;
      if (Date.now() > deadline) {
        throw new Error(`editor text ${JSON.stringify(last)} does not contain ${JSON.stringify(contains)} after ${timeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  },

  // The active editor tab's label, once one contains `contains`.
  async active_tab({ contains = "" }) {
    const tab = page.locator(SEL.activeTab, { hasText: contains });
    await tab.waitFor();
    return (await tab.innerText()).trim();
  },

  // The text of the active webview (e.g. the Markdown preview), once it contains `contains`.
  async webview_text({ contains = "" }) {
    const body = page.frameLocator(`${SEL.webviewContent}:visible`).frameLocator(SEL.webviewActiveFrame).locator("body");
    await body.filter({ hasText: contains }).waitFor();
    return body.innerText();
  },

  // Ctrl+S, then wait until the tab is no longer dirty (the file is written).
  async save() {
    await page.keyboard.press("Control+S");
    await page.waitForSelector(`${SEL.activeTab}:not(.dirty)`);
    return null;
  },

  async screenshot({ name }) {
    shotCount += 1;
    const file = path.join(shotDir, `${String(shotCount).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file });
    return file;
  },

  // The Problems view's rows (Ctrl+Shift+M), waiting until one contains `contains`.
  async problems({ contains = "" }) {
    // Ctrl+Shift+M toggles: press it only when the view is not showing already.
    if (!(await page.locator(SEL.markers).isVisible())) await page.keyboard.press("Control+Shift+M");
    const row = page.locator(SEL.markersRow, { hasText: contains });
    await row.first().waitFor({ state: "visible" });
    return page.locator(SEL.markersRow).allInnerTexts();
  },

  // Back to the editor (Ctrl+1) with its cursor where it was.
  async focus_editor() {
    await page.keyboard.press("Control+1");
    await page.waitForSelector(`${SEL.activeEditor}.focused`);
    return null;
  },

  // The hover at the cursor (Ctrl+K Ctrl+I): a diagnostic's message shows there.
  // `shot`: a screenshot of it before it is closed.
  async hover_text({ shot = null }) {
    await page.keyboard.press("Control+K");
    await page.keyboard.press("Control+I");
    const hover = page.locator(SEL.hover);
    await hover.first().waitFor({ state: "visible" });
    const text = (await hover.allInnerTexts()).join("\n");
    if (shot !== null) await commands.screenshot({ name: shot });
    await page.keyboard.press("Escape");
    return text;
  },

  // Ctrl+. at the cursor, then the action whose title contains `title`. Returns the titles
  // offered, so a test can assert on them too. `shot`: a screenshot of the open menu.
  // A press can be lost (focus still moving back from a closing quick input) or answered
  // "No code actions available" when it lands before the editor has the diagnostics, so
  // the menu is asked for again, each attempt's outcome kept for the error.
  async apply_quick_fix({ title, shot = null }) {
    const rows = page.locator(SEL.actionRow);
    const deadline = Date.now() + timeoutMs;
    const attempts = [];
    for (;;) {
      await page.waitForSelector(`${SEL.activeEditor}.focused`);
      await page.keyboard.press("Control+.");
      const shown = await rows.first().waitFor({ state: "visible", timeout: 8000 })
        .then(() => true, () => false);
      if (shown) break;
      const said = await page.locator(SEL.editorMessage).allInnerTexts();
      attempts.push(said.length ? `VS Code said ${JSON.stringify(said.join(" "))}` : "no menu");
      console.error(`apply_quick_fix: attempt ${attempts.length}: ${attempts.at(-1)}`);
      if (Date.now() + 8000 > deadline) {
        throw new Error(`no code action menu after ${attempts.length} Ctrl+. presses: ${attempts.join("; ")}`);
      }
      await page.keyboard.press("Escape");
    }
    const offered = await rows.allInnerTexts();
    if (shot !== null) await commands.screenshot({ name: shot });
    await rows.filter({ hasText: title }).first().click();
    await page.waitForSelector(SEL.actionWidget, { state: "hidden" });
    return offered;
  },

  // The command palette: run a command by its title (e.g. "Zi: Show Stats").
  async run_command({ title }) {
    await page.keyboard.press("Control+Shift+P");
    await page.waitForSelector(SEL.quickInput, { state: "visible" });
    await page.keyboard.type(title);
    await page.locator(SEL.quickInputRow, { hasText: title }).first().waitFor();
    await page.keyboard.press("Enter");
    return null;
  },

  // Status bar items' accessible labels (or text), once one contains `contains`: an
  // extension's state ("Zi Coder: ready") is often in the label, its text being an icon.
  async status_bar({ contains = "" }) {
    await page.waitForFunction(
      ({ sel, contains }) => [...document.querySelectorAll(sel)].some((e) =>
        (e.getAttribute("aria-label") || e.textContent || "").includes(contains)),
      { sel: SEL.statusItem, contains });
    return page.evaluate(({ sel }) => [...document.querySelectorAll(sel)]
      .map((e) => e.getAttribute("aria-label") || e.textContent).filter(Boolean), { sel: SEL.statusItem });
  },

  // From now on, remember every status bar label shown (a MutationObserver), so that a
  // test can tell a state that came and went (a restart's "starting") from a stale one.
  async watch_status_bar() {
    await page.evaluate(({ bar, sel }) => {
      const seen = new Set();
      const sample = () => document.querySelectorAll(sel).forEach((e) => {
        const label = e.getAttribute("aria-label") || e.textContent;
        if (label) seen.add(label);
      });
      sample();
      window.__ziStatusWatcher?.observer.disconnect();
      const observer = new MutationObserver(sample);
      observer.observe(document.querySelector(bar), { subtree: true, childList: true, attributes: true, characterData: true });
      window.__ziStatusWatcher = { observer, seen };
    }, { bar: SEL.statusbar, sel: SEL.statusItem });
    return null;
  },

  // The labels seen since watch_status_bar, once one contains `contains`.
  async status_bar_seen({ contains = "" }) {
    await page.waitForFunction(
      (contains) => [...(window.__ziStatusWatcher?.seen ?? [])].some((label) => label.includes(contains)),
      contains);
    return page.evaluate(() => [...window.__ziStatusWatcher.seen]);
  },

  // Toasts on screen, once one shows (a command's answer may take a moment).
  async notifications() {
    await page.locator(SEL.notification).first().waitFor();
    return page.locator(SEL.notification).allInnerTexts();
  },

  // The toast containing `contains`, once it shows: its message and its buttons.
  async notification({ contains }) {
    const toast = page.locator(SEL.notification, { hasText: contains }).first();
    await toast.waitFor();
    return {
      message: (await toast.locator(SEL.notificationMessage).innerText()).trim(),
      buttons: (await toast.locator(SEL.notificationButton).allInnerTexts()).map((b) => b.trim()),
    };
  },

  // Clicks the button `button` of the toast containing `contains`; the toast closes.
  async click_notification_button({ contains, button }) {
    const toast = page.locator(SEL.notification, { hasText: contains }).first();
    await toast.locator(SEL.notificationButton, { hasText: button }).first().click();
    await toast.waitFor({ state: "detached" });
    return null;
  },

  // Escape hatch for a test's one-off needs: a function body run in the page.
  async evaluate({ body, arg }) {
    return page.evaluate(({ body, arg }) => new Function("arg", body)(arg), { body, arg });
  },

  async close() {
    await browser?.close();
    browser = undefined;
    return null;
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  const { id, cmd, args = {} } = JSON.parse(line);
  let answer;
  try {
    // Every request carries its deadline (ms): Playwright's waits all use it.
    if (args.timeout) timeoutMs = args.timeout;
    if (page && args.timeout) page.setDefaultTimeout(args.timeout);
    if (!commands[cmd]) throw new Error(`unknown command ${cmd}`);
    answer = { id, ok: true, result: await commands[cmd](args) };
  } catch (err) {
    answer = { id, ok: false, error: String(err?.message ?? err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
// stdin closed: the harness is gone; do not leave a headless browser behind.
rl.on("close", async () => {
  await browser?.close().catch(() => {});
  process.exit(0);
});
