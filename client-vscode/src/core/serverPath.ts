/**
 * Where the `zi-coder` executable is: `zi.server.path` as a name on PATH or a path,
 * with `~`, `${userHome}` and `${workspaceFolder}` expanded. With the default name,
 * a workspace's `.venv/bin/zi-coder` (trusted workspaces only: it is the
 * workspace's own program) and `~/.local/bin/zi-coder` (`uv tool install`,
 * `pip install --user`) are tried too, since VS Code often starts without the
 * shell's PATH.
 *
 * The file system is passed in (`isExecutable`), so this is unit-tested in plain Node.
 */

export const DEFAULT_SERVER_NAME = "zi-coder";

export interface ResolveInput {
  /** `zi.server.path` ("" means the default). */
  readonly setting: string;
  /** The PATH of the extension host. */
  readonly pathEnv: string;
  /** Windows' PATHEXT (";"-separated); ignored elsewhere. */
  readonly pathExt?: string;
  readonly platform: NodeJS.Platform;
  readonly homeDir: string;
  /** Workspace folder paths, the first one first. */
  readonly workspaceFolders: readonly string[];
  readonly trusted: boolean;
  readonly isExecutable: (file: string) => boolean;
}

export type Resolution =
  | { readonly found: true; readonly command: string }
  | { readonly found: false; readonly tried: readonly string[]; readonly reason: string };

export function resolveServerCommand(input: ResolveInput): Resolution {
  const sep = input.platform === "win32" ? "\\" : "/";
  const setting = expand(input.setting.trim() || DEFAULT_SERVER_NAME, input);
  if (setting === undefined) {
    return {
      found: false,
      tried: [],
      reason: `zi.server.path uses \${workspaceFolder} but no folder is open`,
    };
  }
  const tried: string[] = [];
  const candidates = (file: string): string[] =>
    input.platform === "win32" && !/\.[A-Za-z0-9]+$/.test(file)
      ? [file, ...windowsExtensions(input.pathExt).map((ext) => file + ext)]
      : [file];
  const first = (files: string[]): string | undefined => {
    for (const file of files) {
      tried.push(file);
      if (input.isExecutable(file)) {
        return file;
      }
    }
    return undefined;
  };

  if (hasSeparator(setting)) {
    const absolute = isAbsolute(setting, input.platform)
      ? setting
      : input.workspaceFolders.length > 0
        ? join(input.workspaceFolders[0], setting, sep)
        : setting;
    const hit = first(candidates(absolute));
    return hit !== undefined
      ? { found: true, command: hit }
      : { found: false, tried, reason: `${absolute} is not an executable file` };
  }

  const delimiter = input.platform === "win32" ? ";" : ":";
  for (const dir of input.pathEnv.split(delimiter)) {
    if (dir === "") {
      continue;
    }
    const hit = first(candidates(join(dir, setting, sep)));
    if (hit !== undefined) {
      return { found: true, command: hit };
    }
  }
  if (setting === DEFAULT_SERVER_NAME) {
    const bin = input.platform === "win32" ? "Scripts" : "bin";
    const fallbacks = [
      ...(input.trusted ? input.workspaceFolders.map((folder) => join(join(join(folder, ".venv", sep), bin, sep), setting, sep)) : []),
      ...(input.homeDir ? [join(join(join(input.homeDir, ".local", sep), "bin", sep), setting, sep)] : []),
    ];
    for (const file of fallbacks) {
      const hit = first(candidates(file));
      if (hit !== undefined) {
        return { found: true, command: hit };
      }
    }
  }
  return { found: false, tried, reason: `${setting} was not found on PATH` };
}

function expand(value: string, input: ResolveInput): string | undefined {
  let out = value;
  if (out === "~" || out.startsWith("~/") || out.startsWith("~\\")) {
    out = input.homeDir + out.slice(1);
  }
  out = out.replace(/\$\{userHome\}/g, input.homeDir);
  if (out.includes("${workspaceFolder}")) {
    if (input.workspaceFolders.length === 0) {
      return undefined;
    }
    out = out.replace(/\$\{workspaceFolder\}/g, input.workspaceFolders[0]);
  }
  return out;
}

function hasSeparator(value: string): boolean {
  return value.includes("/") || value.includes("\\");
}

function isAbsolute(value: string, platform: NodeJS.Platform): boolean {
  return platform === "win32" ? /^([A-Za-z]:[\\/]|\\\\)/.test(value) : value.startsWith("/");
}

function join(dir: string, name: string, sep: string): string {
  return dir.endsWith(sep) || dir.endsWith("/") ? dir + name : dir + sep + name;
}

function windowsExtensions(pathExt: string | undefined): string[] {
  return (pathExt || ".EXE;.CMD;.BAT;.COM")
    .split(";")
    .filter((ext) => ext !== "")
    .map((ext) => ext.toLowerCase());
}

/** The message shown when the server cannot be found. */
export function missingServerMessage(resolution: Extract<Resolution, { found: false }>): string {
  return (
    `Zi Coder: the language server is not installed or not found (${resolution.reason}). ` +
    "Install it from a checkout of zi-coder (`uv tool install <checkout>` puts it in ~/.local/bin, where the default zi.server.path finds it), " +
    "or set zi.server.path to the zi-coder executable."
  );
}
