import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { StatusEvent, StatusState, initialState, isBusy, modelLine, reduce, view } from "../src/core/status";

function run(events: StatusEvent[], start: StatusState = initialState()): StatusState {
  return events.reduce(reduce, start);
}

const RUNNING: StatusEvent = { type: "running" };
const READY: StatusEvent = { type: "ready" };
/** The extension's state at activation: no file open yet, no server. */
const WAITING = initialState({ phase: "waiting" });

describe("status bar text", () => {
  const cases: Array<[string, StatusEvent[], string, string, StatusState?]> = [
    ["starting", [], "$(sync~spin) Zi", "normal"],
    ["waiting for the first file", [], "$(circle-outline) Zi", "normal", WAITING],
    ["waiting, then starting", [{ type: "starting" }], "$(sync~spin) Zi", "normal", WAITING],
    ["running but still importing (fast start)", [RUNNING], "$(sync~spin) Zi", "normal"],
    ["ready after an answered request", [RUNNING, { type: "requestStarted" }, { type: "requestEnded", ok: true, items: 0 }], "$(sparkle) Zi", "normal"],
    ["idle", [RUNNING, READY], "$(sparkle) Zi", "normal"],
    ["generating while a request is in flight", [RUNNING, READY, { type: "requestStarted" }], "$(sync~spin) Zi", "normal"],
    [
      "idle again when it ends",
      [RUNNING, READY, { type: "requestStarted" }, { type: "requestEnded", ok: true, items: 1 }],
      "$(sparkle) Zi",
      "normal",
    ],
    [
      "overlapping requests: busy until the last ends",
      [RUNNING, READY, { type: "requestStarted" }, { type: "requestStarted" }, { type: "requestEnded", ok: false }],
      "$(sync~spin) Zi",
      "normal",
    ],
    [
      "generating during work-done progress",
      [RUNNING, READY, { type: "progressBegin", token: "t1", title: "Zi: Generate tests" }],
      "$(sync~spin) Zi",
      "normal",
    ],
    [
      "progress ended",
      [RUNNING, READY, { type: "progressBegin", token: "t1", title: "x" }, { type: "progressEnd", token: "t1" }],
      "$(sparkle) Zi",
      "normal",
    ],
    ["error from the server", [RUNNING, READY, { type: "problem", severity: "error", message: "model down" }], "$(error) Zi", "error"],
    ["warning from the server", [RUNNING, READY, { type: "problem", severity: "warning", message: "loading" }], "$(warning) Zi", "warning"],
    [
      "a resolution clears the problem",
      [RUNNING, READY, { type: "problem", severity: "error", message: "down" }, { type: "resolved" }],
      "$(sparkle) Zi",
      "normal",
    ],
    [
      "a suggestion clears the problem",
      [RUNNING, READY, { type: "problem", severity: "warning", message: "x" }, { type: "requestStarted" }, { type: "requestEnded", ok: true, items: 1 }],
      "$(sparkle) Zi",
      "normal",
    ],
    [
      "an empty answer does not",
      [RUNNING, READY, { type: "problem", severity: "warning", message: "x" }, { type: "requestStarted" }, { type: "requestEnded", ok: true, items: 0 }],
      "$(warning) Zi",
      "warning",
    ],
    ["failed start", [{ type: "failed", reason: "zi-coder not found" }], "$(error) Zi", "error"],
    ["stopped", [RUNNING, READY, { type: "stopped" }], "$(debug-disconnect) Zi", "normal"],
    [
      "completions off",
      [RUNNING, READY, { type: "configured", completionsEnabled: false, model: "", url: "" }],
      "$(circle-slash) Zi",
      "normal",
    ],
    [
      "a restart forgets the old process's problem",
      [RUNNING, READY, { type: "problem", severity: "error", message: "x" }, { type: "starting" }, RUNNING, READY],
      "$(sparkle) Zi",
      "normal",
    ],
  ];
  for (const [name, events, text, kind, start] of cases) {
    test(name, () => {
      const shown = view(run(events, start));
      assert.equal(shown.text, text);
      assert.equal(shown.kind, kind);
    });
  }
});

describe("status bar tooltip", () => {
  test("the headline is the tooltip's first line and says the state", () => {
    const cases: Array<[StatusEvent[], string, StatusState?]> = [
      [[], "Zi Coder: starting the server"],
      [[RUNNING, READY], "Zi Coder: ready"],
      [[RUNNING, READY, { type: "requestStarted" }], "Zi Coder: generating"],
      [[RUNNING, READY, { type: "problem", severity: "warning", message: "m" }], "Zi Coder: warning"],
      [[{ type: "failed", reason: "r" }], "Zi Coder: not running: r"],
      [[], "Zi Coder: the server starts when a file opens", WAITING],
    ];
    for (const [events, headline, start] of cases) {
      const shown = view(run(events, start));
      assert.equal(shown.headline, headline);
      assert.equal(shown.tooltip.split("\n")[0], headline);
    }
  });

  test("a restart is not ready until the new process answers", () => {
    assert.equal(run([RUNNING, READY, { type: "starting" }, RUNNING]).ready, false);
  });

  test("the reason of a failure", () => {
    const tooltip = view(run([{ type: "failed", reason: "zi-coder not found" }])).tooltip;
    assert.match(tooltip, /not running: zi-coder not found/);
  });

  test("the server's message for a problem", () => {
    const tooltip = view(run([RUNNING, READY, { type: "problem", severity: "error", message: "model 'x' is not served" }])).tooltip;
    assert.match(tooltip, /Error: model 'x' is not served/);
  });

  test("the progress titles while working, without the server's Zi: prefix", () => {
    const shown = view(run([RUNNING, READY, { type: "progressBegin", token: "1", title: "Zi: Fix with Zi: Undefined name `y`" }]));
    assert.equal(shown.headline, "Zi Coder: Fix with Zi: Undefined name `y`");
  });

  test("an error is not replaced by a later warning", () => {
    const state = run([
      RUNNING,
      { type: "problem", severity: "error", message: "bad model" },
      { type: "problem", severity: "warning", message: "slow" },
    ]);
    assert.equal(state.problem?.message, "bad model");
  });

  test("a request ending without a start never goes negative", () => {
    const state = run([RUNNING, READY, { type: "requestEnded", ok: true }]);
    assert.equal(state.requests, 0);
    assert.equal(isBusy(state), false);
  });

  test("an unknown progress end changes nothing", () => {
    const before = run([RUNNING, READY]);
    assert.equal(reduce(before, { type: "progressEnd", token: "nope" }), before);
  });
});

describe("model name", () => {
  const cases: Array<[string, StatusEvent[], string]> = [
    ["announced by the server", [{ type: "configured", completionsEnabled: true, model: "cfg", url: "u" }, { type: "model", name: "tiny-coder" }], "Model: tiny-coder"],
    ["configured", [{ type: "configured", completionsEnabled: true, model: "cfg", url: "u" }], "Model: cfg (configured)"],
    ["neither", [{ type: "configured", completionsEnabled: true, model: "", url: "http://h:8000/v1" }], "Model: the first one served at http://h:8000/v1"],
    ["announced, then a restart", [{ type: "model", name: "a" }, { type: "starting" }], "Model: the first one served at the configured server"],
  ];
  for (const [name, events, line] of cases) {
    test(name, () => {
      const state = run(events);
      assert.equal(modelLine(state), line);
      assert.ok(view(state).tooltip.includes(line));
    });
  }
});
