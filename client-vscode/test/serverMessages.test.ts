import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { MessageType, StderrClassifier, interpretMessage, stripPrefix } from "../src/core/serverMessages";

// The wording is the server's (server/completion/backend.py, server/notify.py,
// server/lsp/features/lifecycle.py): keep these in step with it.
describe("interpretMessage", () => {
  const cases: Array<[string, number, string, boolean, ReturnType<typeof interpretMessage>]> = [
    [
      "a lasting error shown",
      MessageType.Error,
      "Zi: model 'qwen' is not served at http://127.0.0.1:8000/v1 (served: tiny-coder)",
      true,
      { kind: "problem", severity: "error", message: "model 'qwen' is not served at http://127.0.0.1:8000/v1 (served: tiny-coder)" },
    ],
    [
      "a lasting warning shown",
      MessageType.Warning,
      "Zi: model server at http://127.0.0.1:8000/v1 is not ready yet (connection refused); completions start when it answers",
      true,
      {
        kind: "problem",
        severity: "warning",
        message: "model server at http://127.0.0.1:8000/v1 is not ready yet (connection refused); completions start when it answers",
      },
    ],
    ["invalid settings", MessageType.Error, "Zi: invalid settings ignored: zi.completion.debounce_ms: Input should be greater than or equal to 0", true, { kind: "problem", severity: "error", message: "invalid settings ignored: zi.completion.debounce_ms: Input should be greater than or equal to 0" }],
    ["a logged warning is not a status problem", MessageType.Warning, "Zi: Redis at redis://x is unreachable", false, { kind: "none" }],
    ["the model in use", MessageType.Info, "Zi: using model 'tiny-coder' with the qwen FIM template, context window 1024 tokens", false, { kind: "model", name: "tiny-coder" }],
    ["a model name with a quote (Python repr)", MessageType.Info, `Zi: using model "o'brien" with the qwen FIM template`, false, { kind: "model", name: "o'brien" }],
    ["model server back", MessageType.Info, "Zi: the model server answers again", false, { kind: "resolved" }],
    ["model server at URL back", MessageType.Info, "Zi: model server at http://h/v1 answers again", false, { kind: "resolved" }],
    ["rate limit over", MessageType.Info, "Zi: model server at http://h/v1 accepts requests again", false, { kind: "resolved" }],
    ["settings accepted", MessageType.Info, "Zi: settings updated from the client", false, { kind: "resolved" }],
    ["anything else", MessageType.Info, "Zi: something", false, { kind: "none" }],
    ["an info shown", MessageType.Info, "Zi: hello", true, { kind: "none" }],
  ];
  for (const [name, type, message, shown, expected] of cases) {
    test(name, () => assert.deepEqual(interpretMessage(type, message, shown), expected));
  }

  test("stripPrefix keeps messages without the prefix", () => {
    assert.equal(stripPrefix("Zi: a"), "a");
    assert.equal(stripPrefix("other"), "other");
  });
});

describe("StderrClassifier", () => {
  test("levels from the server's log format; continuation lines keep the record's level", () => {
    const classifier = new StderrClassifier();
    const lines = [
      "Python startup noise",
      "2026-11-21 10:00:00,123 INFO server.lsp.server: started",
      "2026-11-21 10:00:01,001 WARNING server.cache: Redis unreachable",
      "2026-11-21 10:00:02,002 ERROR server.lsp.server: internal error (x): boom",
      "Traceback (most recent call last):",
      '  File "x.py", line 1',
      "2026-11-21 10:00:03,003 DEBUG pygls: message",
      "2026-11-21 10:00:04,004 CRITICAL server: dead",
    ];
    assert.deepEqual(
      lines.map((line) => classifier.classify(line)),
      [
        { level: "warn", text: "Python startup noise" },
        { level: "info", text: "server.lsp.server: started" },
        { level: "warn", text: "server.cache: Redis unreachable" },
        { level: "error", text: "server.lsp.server: internal error (x): boom" },
        { level: "error", text: "Traceback (most recent call last):" },
        { level: "error", text: '  File "x.py", line 1' },
        { level: "info", text: "[debug] pygls: message" },
        { level: "error", text: "server: dead" },
      ],
    );
  });
});
