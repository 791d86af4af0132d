import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";

import { TRACK_BY_KEYS_CONTEXT_NAME } from "./constants";
import { ROOT, readManifest, readSource } from "./helpers";

const manifest = readManifest();

describe("package.json", () => {
  test("every contributed command is registered, and every registered one contributed", () => {
    const registered = [...readSource("src/commands.ts").matchAll(/registerCommand\("([^"]+)"/g)].map((m) => m[1]).sort();
    const contributed = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
    assert.deepEqual(registered, contributed);
  });

  test("the commands the issue asks for", () => {
    const contributed = manifest.contributes.commands.map((c: { command: string }) => c.command);
    for (const command of ["zi.enableCompletions", "zi.disableCompletions", "zi.showStats", "zi.restartServer", "zi.openLog"]) {
      assert.ok(contributed.includes(command), command);
    }
  });

  test("the server's accept command is not contributed (the client registers it from the server)", () => {
    const contributed = manifest.contributes.commands.map((c: { command: string }) => c.command);
    assert.ok(!contributed.includes("zi.acceptCompletion"));
  });

  test("the partial-accept key binding uses the context key the extension sets", () => {
    const binding = manifest.contributes.keybindings.find((k: { command: string }) => k.command === "zi.acceptNextWord");
    assert.ok(binding.when.includes(TRACK_BY_KEYS_CONTEXT_NAME));
    assert.ok(readSource("src/inline.ts").includes(`"${TRACK_BY_KEYS_CONTEXT_NAME}"`));
  });

  test("activation matches the document selector: every file and unsaved buffer", () => {
    // An onLanguage list would leave Markdown, JSON, a Makefile... without the server
    // until a listed language opened, although the selector serves them.
    const selector = readSource("src/client.ts").match(/export const DOCUMENT_SELECTOR = (\[[^\n]*\]);/)?.[1];
    assert.equal(selector, '[{ scheme: "file" }, { scheme: "untitled" }]');
    assert.deepEqual(manifest.activationEvents, ["onStartupFinished"]);
    // ...and the server starts with the first such document, not with every window.
    assert.match(readSource("src/extension.ts"), /vscode\.languages\.match\(DOCUMENT_SELECTOR, document\)/);
  });

  test("the bundle is the entry point, and the .vsix leaves sources out", () => {
    assert.equal(manifest.main, "./dist/extension.js");
    const ignore = fs.readFileSync(path.join(ROOT, ".vscodeignore"), "utf8").split(/\r?\n/);
    for (const pattern of ["src/**", "test/**", "out/**", "node_modules/**"]) {
      assert.ok(ignore.includes(pattern), pattern);
    }
  });

  test("the proposed API the acceptance hooks need is declared", () => {
    assert.deepEqual(manifest.enabledApiProposals, ["inlineCompletionsAdditions"]);
  });
});

describe("core modules run without VS Code", () => {
  const core = path.join(ROOT, "src", "core");
  for (const file of fs.readdirSync(core).filter((name) => name.endsWith(".ts"))) {
    test(file, () => {
      const source = fs.readFileSync(path.join(core, file), "utf8");
      assert.doesNotMatch(source, /from "vscode(-languageclient[^"]*)?"/);
      assert.doesNotMatch(source, /require\("vscode"\)/);
    });
  }
});
