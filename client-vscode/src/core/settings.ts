/**
 * VS Code settings (`zi.*`) → what the server gets.
 *
 * The server reads its settings from the environment (`ZI_*`) and lets a client
 * override any key with `initializationOptions` and `workspace/configuration`
 * (section `zi`, nested keys). Only the keys the user has *set* are sent: the
 * contributed defaults equal the server's, and sending them would silently override
 * `ZI_*` variables the user exported for the server. Keys the server reads only at
 * process start go into the environment instead, and changing them restarts it.
 *
 * No `vscode` import here: the extension passes in what VS Code's
 * `WorkspaceConfiguration.inspect()` returns, so this is unit-tested in plain Node.
 */

/** Settings of the extension itself, never sent to the server. */
export const CLIENT_ONLY_KEYS: ReadonlySet<string> = new Set(["server.path", "trace.server", "acceptanceEvents"]);

/** Read by the server once at start: passed as environment variables (a change restarts). */
export const START_ONLY_KEYS: Readonly<Record<string, string>> = {
  log_level: "ZI_LOG_LEVEL",
  log_file: "ZI_LOG_FILE",
  fast_start: "ZI_FAST_START",
};

/** One contributed setting, as described by package.json. */
export interface SettingSpec {
  /** Without the `zi.` prefix, e.g. `inference.model`. */
  readonly key: string;
  /** A string whose default is "": the server's `None`; an explicit "" sends null. */
  readonly nullable: boolean;
  /** Listed in `restrictedConfigurations`: workspace values are ignored when untrusted. */
  readonly restricted: boolean;
}

/** The shape of `WorkspaceConfiguration.inspect(key)` that matters here. */
export interface Inspected {
  readonly defaultValue?: unknown;
  readonly globalValue?: unknown;
  readonly workspaceValue?: unknown;
  readonly workspaceFolderValue?: unknown;
}

export type Inspect = (key: string) => Inspected | undefined;

export interface Trust {
  readonly trusted: boolean;
}

interface ManifestProperty {
  type?: string | string[];
  default?: unknown;
}

interface ManifestSection {
  properties?: Record<string, ManifestProperty>;
}

/** The contributed `zi.*` settings, read from the extension's package.json. */
export function specsFromManifest(manifest: unknown): SettingSpec[] {
  const m = manifest as {
    contributes?: { configuration?: ManifestSection | ManifestSection[] };
    capabilities?: { untrustedWorkspaces?: { restrictedConfigurations?: string[] } };
  };
  const configuration = m.contributes?.configuration;
  const sections = Array.isArray(configuration) ? configuration : configuration ? [configuration] : [];
  const restricted = new Set(m.capabilities?.untrustedWorkspaces?.restrictedConfigurations ?? []);
  const specs: SettingSpec[] = [];
  for (const section of sections) {
    for (const [name, property] of Object.entries(section.properties ?? {})) {
      if (!name.startsWith("zi.")) {
        continue;
      }
      specs.push({
        key: name.slice("zi.".length),
        nullable: property.type === "string" && property.default === "",
        restricted: restricted.has(name),
      });
    }
  }
  return specs;
}

/**
 * The value the user set, if any: folder over workspace over user settings, the way
 * VS Code resolves them; workspace values of restricted keys don't count when the
 * workspace is untrusted (VS Code's own `get()` ignores them too).
 */
export function explicitValue(
  inspected: Inspected | undefined,
  restricted: boolean,
  trust: Trust,
): { readonly set: boolean; readonly value?: unknown } {
  if (inspected === undefined) {
    return { set: false };
  }
  const workspaceCounts = trust.trusted || !restricted;
  if (workspaceCounts && inspected.workspaceFolderValue !== undefined) {
    return { set: true, value: inspected.workspaceFolderValue };
  }
  if (workspaceCounts && inspected.workspaceValue !== undefined) {
    return { set: true, value: inspected.workspaceValue };
  }
  if (inspected.globalValue !== undefined) {
    return { set: true, value: inspected.globalValue };
  }
  return { set: false };
}

/**
 * The settings the user set that the server takes from a client, as (key, value)
 * pairs: no client-only or start-only keys. An explicit "" is null for nullable keys
 * (unset, also over a `ZI_*` variable) and dropped for the others (an empty URL is
 * never meant).
 */
export function explicitServerSettings(
  specs: readonly SettingSpec[],
  inspect: Inspect,
  trust: Trust,
): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (const spec of specs) {
    if (CLIENT_ONLY_KEYS.has(spec.key) || spec.key in START_ONLY_KEYS) {
      continue;
    }
    const { set, value } = explicitValue(inspect(spec.key), spec.restricted, trust);
    if (!set || value === undefined) {
      continue;
    }
    if (value === "" || value === null) {
      if (spec.nullable) {
        out.push([spec.key, null]);
      }
      continue;
    }
    out.push([spec.key, value]);
  }
  return out;
}

/** The nested overrides for the server, e.g. `{inference: {model: "qwen"}}`. */
export function serverOverrides(
  specs: readonly SettingSpec[],
  inspect: Inspect,
  trust: Trust,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of explicitServerSettings(specs, inspect, trust)) {
    setPath(out, key, value);
  }
  return out;
}

/**
 * The same settings as `ZI_*` variables over `base` (nested keys joined with `__`,
 * the server's env_nested_delimiter), for `zi-coder` commands run beside the server
 * (`stats`) so they read the same database. Null unsets the variable.
 */
export function settingsEnvironment(
  specs: readonly SettingSpec[],
  inspect: Inspect,
  trust: Trust,
  base: Readonly<Record<string, string | undefined>>,
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...base };
  for (const [key, value] of explicitServerSettings(specs, inspect, trust)) {
    const name = `ZI_${key.split(".").join("__").toUpperCase()}`;
    if (value === null) {
      delete env[name];
    } else {
      env[name] = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  return { ...env, ...startEnvironment(specs, inspect, trust) };
}

/** Environment variables for the start-only keys the user set (e.g. ZI_LOG_LEVEL). */
export function startEnvironment(
  specs: readonly SettingSpec[],
  inspect: Inspect,
  trust: Trust,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const spec of specs) {
    const variable = START_ONLY_KEYS[spec.key];
    if (variable === undefined) {
      continue;
    }
    const { set, value } = explicitValue(inspect(spec.key), spec.restricted, trust);
    if (!set || value === undefined || value === null || value === "") {
      continue;
    }
    env[variable] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return env;
}

/** `setPath(o, "a.b", 1)` makes `o.a.b === 1`, creating `o.a` as needed. */
export function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== "object" || next === null || Array.isArray(next)) {
      node[part] = {};
    }
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}

/**
 * Where a toggle command writes `zi.completion.enabled`: the most specific scope that
 * already sets it (so a workspace `false` is really turned on), else user settings.
 */
export function toggleTarget(inspected: Inspected | undefined): "workspaceFolder" | "workspace" | "global" {
  if (inspected?.workspaceFolderValue !== undefined) {
    return "workspaceFolder";
  }
  if (inspected?.workspaceValue !== undefined) {
    return "workspace";
  }
  return "global";
}

