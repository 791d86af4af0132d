import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  CLIENT_ONLY_KEYS,
  Inspected,
  START_ONLY_KEYS,
  SettingSpec,
  explicitValue,
  serverOverrides,
  setPath,
  settingsEnvironment,
  specsFromManifest,
  startEnvironment,
  toggleTarget,
} from "../src/core/settings";
import { readManifest } from "./helpers";

const TRUSTED = { trusted: true };
const UNTRUSTED = { trusted: false };
const specs = specsFromManifest(readManifest());

/** An inspect() over a table of user / workspace values. */
function inspector(user: Record<string, unknown>, workspace: Record<string, unknown> = {}) {
  return (key: string): Inspected => ({ globalValue: user[key], workspaceValue: workspace[key] });
}

describe("specsFromManifest", () => {
  test("reads every contributed zi.* setting, without the prefix", () => {
    const keys = specs.map((spec) => spec.key);
    for (const key of ["server.path", "inference.url", "completion.debounce_ms", "diagnostics.languages", "redis_url"]) {
      assert.ok(keys.includes(key), key);
    }
    assert.ok(keys.every((key) => !key.startsWith("zi.")));
  });

  test("strings defaulting to \"\" are the server's optional settings", () => {
    const nullable = specs.filter((spec) => spec.nullable).map((spec) => spec.key).sort();
    assert.deepEqual(nullable, [
      "actions.chat_model",
      "database_url",
      "inference.api_key",
      "inference.model",
      "inference.tokenizer_path",
      "log_file",
      "mcp.servers_file",
      "models_file",
      "queue_redis_url",
      "redis_url",
      "state_dir",
      "vllm_python",
    ]);
  });

  test("restricted settings come from capabilities.untrustedWorkspaces", () => {
    const restricted = new Set(specs.filter((spec) => spec.restricted).map((spec) => spec.key));
    assert.ok(restricted.has("server.path"));
    assert.ok(restricted.has("inference.url"));
    assert.ok(restricted.has("history.store_prompts")); // a cloned repo must not turn it on
    assert.ok(restricted.has("mcp.servers_file")); // nor name programs for the server to start
    assert.ok(restricted.has("context.ignore")); // nor re-include .env with `!.env`
    assert.ok(restricted.has("context.gitignore")); // nor send what .gitignore keeps out
    assert.ok(!restricted.has("completion.enabled"));
  });

  test("a manifest with one configuration object (not an array) works too", () => {
    const one = specsFromManifest({
      contributes: { configuration: { properties: { "zi.a": { type: "string", default: "" }, other: {} } } },
    });
    assert.deepEqual(one, [{ key: "a", nullable: true, restricted: false }]);
  });
});

describe("explicitValue", () => {
  const cases: Array<[string, Inspected | undefined, boolean, { trusted: boolean }, { set: boolean; value?: unknown }]> = [
    ["nothing set", { defaultValue: 1 }, false, TRUSTED, { set: false }],
    ["unknown key", undefined, false, TRUSTED, { set: false }],
    ["user value", { defaultValue: 1, globalValue: 2 }, false, TRUSTED, { set: true, value: 2 }],
    ["workspace over user", { globalValue: 2, workspaceValue: 3 }, false, TRUSTED, { set: true, value: 3 }],
    ["folder over workspace", { workspaceValue: 3, workspaceFolderValue: 4 }, false, TRUSTED, { set: true, value: 4 }],
    ["untrusted, restricted: workspace ignored", { globalValue: 2, workspaceValue: 3 }, true, UNTRUSTED, { set: true, value: 2 }],
    ["untrusted, restricted, only workspace", { workspaceValue: 3 }, true, UNTRUSTED, { set: false }],
    ["untrusted, not restricted: workspace counts", { globalValue: 2, workspaceValue: 3 }, false, UNTRUSTED, { set: true, value: 3 }],
    ["explicit false is set", { defaultValue: true, globalValue: false }, false, TRUSTED, { set: true, value: false }],
  ];
  for (const [name, inspected, restricted, trust, expected] of cases) {
    test(name, () => assert.deepEqual(explicitValue(inspected, restricted, trust), expected));
  }
});

describe("serverOverrides", () => {
  test("nothing set: nothing sent, so the server's ZI_* environment stays in force", () => {
    assert.deepEqual(serverOverrides(specs, inspector({}), TRUSTED), {});
  });

  test("only the keys the user set, nested", () => {
    const overrides = serverOverrides(
      specs,
      inspector({
        "inference.model": "qwen-coder",
        "completion.debounce_ms": 30,
        "completion.enabled": false,
        "diagnostics.languages": ["python", "go"],
        "inference.extra_body": { min_tokens: 4 },
        "redis_url": "redis://localhost:6379/0",
      }),
      TRUSTED,
    );
    assert.deepEqual(overrides, {
      inference: { model: "qwen-coder", extra_body: { min_tokens: 4 } },
      completion: { debounce_ms: 30, enabled: false },
      diagnostics: { languages: ["python", "go"] },
      redis_url: "redis://localhost:6379/0",
    });
  });

  test("client-only and start-only keys are never sent", () => {
    const user: Record<string, unknown> = { "server.path": "/opt/zi", "trace.server": "verbose", log_level: "DEBUG", log_file: "/tmp/zi.log", fast_start: false };
    assert.deepEqual(serverOverrides(specs, inspector(user), TRUSTED), {});
    for (const key of Object.keys(user)) {
      assert.ok(CLIENT_ONLY_KEYS.has(key) || key in START_ONLY_KEYS, key);
    }
  });

  test("\"\" unsets an optional setting (null) and is dropped for a required one", () => {
    const overrides = serverOverrides(specs, inspector({ "inference.model": "", "inference.url": "", database_url: "" }), TRUSTED);
    assert.deepEqual(overrides, { inference: { model: null }, database_url: null });
  });

  test("an untrusted workspace cannot point the server elsewhere", () => {
    const overrides = serverOverrides(
      specs,
      inspector({}, { "inference.url": "http://evil:8000/v1", "completion.debounce_ms": 10 }),
      UNTRUSTED,
    );
    assert.deepEqual(overrides, { completion: { debounce_ms: 10 } });
  });
});

describe("environments", () => {
  test("start-only settings become ZI_* variables", () => {
    const env = startEnvironment(specs, inspector({ log_level: "DEBUG", fast_start: false, log_file: "", "inference.model": "x" }), TRUSTED);
    assert.deepEqual(env, { ZI_LOG_LEVEL: "DEBUG", ZI_FAST_START: "false" });
  });

  test("settingsEnvironment: every set key as ZI_A__B over the base, null unsets", () => {
    const env = settingsEnvironment(
      specs,
      inspector({ "inference.model": "qwen", database_url: "", "diagnostics.languages": ["python"], "jobs.timeout_s": 60, log_level: "DEBUG" }),
      TRUSTED,
      { PATH: "/bin", ZI_DATABASE_URL: "sqlite:///old.db" },
    );
    assert.deepEqual(env, {
      PATH: "/bin",
      ZI_INFERENCE__MODEL: "qwen",
      ZI_DIAGNOSTICS__LANGUAGES: '["python"]',
      ZI_JOBS__TIMEOUT_S: "60",
      ZI_LOG_LEVEL: "DEBUG",
    });
  });
});

describe("helpers", () => {
  test("setPath creates intermediate objects and replaces non-objects", () => {
    const target: Record<string, unknown> = { a: 1 };
    setPath(target, "a.b.c", 2);
    setPath(target, "d", 3);
    assert.deepEqual(target, { a: { b: { c: 2 } }, d: 3 });
  });

  const toggles: Array<[Inspected | undefined, string]> = [
    [undefined, "global"],
    [{ globalValue: false }, "global"],
    [{ globalValue: true, workspaceValue: false }, "workspace"],
    [{ workspaceFolderValue: false }, "workspaceFolder"],
  ];
  for (const [inspected, expected] of toggles) {
    test(`toggleTarget ${JSON.stringify(inspected)} → ${expected}`, () => assert.equal(toggleTarget(inspected), expected));
  }
});

describe("package.json and the server's settings", () => {
  const manifest = readManifest();
  const properties: Record<string, any> = Object.assign(
    {},
    ...manifest.contributes.configuration.map((section: { properties: object }) => section.properties),
  );

  test("every setting has a description and a default", () => {
    for (const [name, property] of Object.entries(properties)) {
      assert.ok(typeof property.description === "string" && property.description.length > 10, name);
      assert.ok("default" in property, name);
    }
  });

  test("enum defaults are among the choices", () => {
    for (const [name, property] of Object.entries(properties)) {
      if (Array.isArray(property.enum)) {
        assert.ok(property.enum.includes(property.default), name);
      }
    }
  });

  test("restricted settings exist", () => {
    for (const name of manifest.capabilities.untrustedWorkspaces.restrictedConfigurations) {
      assert.ok(name in properties, name);
    }
  });

  test("the defaults the README documents", () => {
    const expected: Record<string, unknown> = {
      "zi.inference.url": "http://127.0.0.1:8000/v1",
      "zi.inference.fim_template": "auto",
      "zi.completion.enabled": true,
      "zi.completion.debounce_ms": 0,
      "zi.actions.enabled": true,
      "zi.diagnostics.review": true,
      "zi.diagnostics.min_severity": "hint",
      "zi.diagnostics.max_file_chars": 60000,
      "zi.diagnostics.languages": [],
      "zi.diagnostics.debounce_ms": 750,
      "zi.log_level": "INFO",
      "zi.jobs.retry_intervals_s": [1, 5],
    };
    for (const [name, value] of Object.entries(expected)) {
      assert.deepEqual(properties[name]?.default, value, name);
    }
  });

  test("specs cover exactly the contributed zi.* settings", () => {
    const specKeys = specs.map((spec: SettingSpec) => `zi.${spec.key}`).sort();
    assert.deepEqual(specKeys, Object.keys(properties).filter((name) => name.startsWith("zi.")).sort());
  });
});
