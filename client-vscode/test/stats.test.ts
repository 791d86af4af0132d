import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { interpretStats } from "../src/core/stats";

describe("interpretStats", () => {
  test("output of a zi-coder that has stats", () => {
    assert.deepEqual(interpretStats({ code: 0, stdout: "accepted 12 of 40\n", stderr: "" }), {
      kind: "output",
      text: "accepted 12 of 40",
    });
  });

  test("argparse's answer from a zi-coder without stats (verbatim from zi-coder 0.1.0)", () => {
    const stderr =
      "usage: zi-coder [-h] [--version] COMMAND ...\n" +
      "zi-coder: error: argument COMMAND: invalid choice: 'stats' (choose from 'serve', 'complete', " +
      "'inference', 'models', 'up', 'doctor', 'worker')\n";
    const outcome = interpretStats({ code: 2, stdout: "", stderr });
    assert.equal(outcome.kind, "unsupported");
    assert.match((outcome as { message: string }).message, /no `stats` command yet/);
  });

  test("a failure says why, from the last line of stderr", () => {
    assert.deepEqual(interpretStats({ code: 1, stdout: "", stderr: "Traceback...\nOperationalError: no such table\n" }), {
      kind: "failed",
      message: "Zi Coder: zi-coder stats failed: OperationalError: no such table",
    });
  });

  test("a process that could not start", () => {
    assert.deepEqual(interpretStats({ code: null, stdout: "", stderr: "", error: "spawn zi-coder ENOENT" }), {
      kind: "failed",
      message: "Zi Coder: could not run zi-coder stats: spawn zi-coder ENOENT",
    });
  });

  test("success without output", () => {
    assert.equal((interpretStats({ code: 0, stdout: "", stderr: "" }) as { text: string }).text, "(zi-coder stats printed nothing)");
  });
});
