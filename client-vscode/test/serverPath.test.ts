import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ResolveInput, missingServerMessage, resolveServerCommand } from "../src/core/serverPath";

function input(executables: string[], change: Partial<ResolveInput> = {}): ResolveInput {
  const files = new Set(executables);
  return {
    setting: "",
    pathEnv: "/usr/local/bin:/usr/bin",
    platform: "linux",
    homeDir: "/home/u",
    workspaceFolders: ["/work/project"],
    trusted: true,
    isExecutable: (file) => files.has(file),
    ...change,
  };
}

describe("resolveServerCommand", () => {
  const found: Array<[string, string[], Partial<ResolveInput>, string]> = [
    ["the default name on PATH", ["/usr/bin/zi-coder"], {}, "/usr/bin/zi-coder"],
    ["the first PATH entry wins", ["/usr/local/bin/zi-coder", "/usr/bin/zi-coder"], {}, "/usr/local/bin/zi-coder"],
    ["a name on PATH", ["/usr/bin/zi"], { setting: "zi" }, "/usr/bin/zi"],
    ["an absolute path", ["/opt/zi/bin/zi-coder"], { setting: "/opt/zi/bin/zi-coder" }, "/opt/zi/bin/zi-coder"],
    ["~ expanded", ["/home/u/venv/bin/zi-coder"], { setting: "~/venv/bin/zi-coder" }, "/home/u/venv/bin/zi-coder"],
    ["${userHome} expanded", ["/home/u/zi"], { setting: "${userHome}/zi" }, "/home/u/zi"],
    ["${workspaceFolder} expanded", ["/work/project/.venv/bin/zi-coder"], { setting: "${workspaceFolder}/.venv/bin/zi-coder" }, "/work/project/.venv/bin/zi-coder"],
    ["a relative path, against the first folder", ["/work/project/tools/zi-coder"], { setting: "tools/zi-coder" }, "/work/project/tools/zi-coder"],
    ["the workspace's .venv when not on PATH (trusted)", ["/work/project/.venv/bin/zi-coder"], {}, "/work/project/.venv/bin/zi-coder"],
    ["~/.local/bin when not on PATH", ["/home/u/.local/bin/zi-coder"], {}, "/home/u/.local/bin/zi-coder"],
    ["spaces around the setting", ["/usr/bin/zi-coder"], { setting: "  zi-coder " }, "/usr/bin/zi-coder"],
    [
      "Windows: PATHEXT",
      ["C:\\Python\\Scripts\\zi-coder.exe"],
      { platform: "win32", pathEnv: "C:\\Windows;C:\\Python\\Scripts", pathExt: ".COM;.EXE", homeDir: "C:\\Users\\u", workspaceFolders: [] },
      "C:\\Python\\Scripts\\zi-coder.exe",
    ],
  ];
  for (const [name, executables, change, command] of found) {
    test(name, () => assert.deepEqual(resolveServerCommand(input(executables, change)), { found: true, command }));
  }

  test("an untrusted workspace's .venv is not run", () => {
    const resolution = resolveServerCommand(input(["/work/project/.venv/bin/zi-coder"], { trusted: false }));
    assert.equal(resolution.found, false);
  });

  test("no fallbacks for a name the user chose", () => {
    const resolution = resolveServerCommand(input(["/home/u/.local/bin/zi"], { setting: "zi" }));
    assert.equal(resolution.found, false);
  });

  test("missing: what was tried and why", () => {
    const resolution = resolveServerCommand(input([]));
    assert.equal(resolution.found, false);
    if (!resolution.found) {
      assert.deepEqual(resolution.tried, [
        "/usr/local/bin/zi-coder",
        "/usr/bin/zi-coder",
        "/work/project/.venv/bin/zi-coder",
        "/home/u/.local/bin/zi-coder",
      ]);
      assert.equal(resolution.reason, "zi-coder was not found on PATH");
      const message = missingServerMessage(resolution);
      assert.match(message, /not installed or not found/);
      assert.match(message, /zi\.server\.path/);
      // zi-coder is not on PyPI: the advice is a checkout, or the setting.
      assert.match(message, /uv tool install <checkout>/);
      assert.match(message, /~\/\.local\/bin/);
      assert.doesNotMatch(message, /pip install/);
    }
  });

  test("a path that is not there", () => {
    const resolution = resolveServerCommand(input([], { setting: "/opt/none/zi-coder" }));
    assert.deepEqual(resolution, { found: false, tried: ["/opt/none/zi-coder"], reason: "/opt/none/zi-coder is not an executable file" });
  });

  test("${workspaceFolder} without a folder", () => {
    const resolution = resolveServerCommand(input([], { setting: "${workspaceFolder}/zi", workspaceFolders: [] }));
    assert.equal(resolution.found, false);
  });
});
