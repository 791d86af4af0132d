/**
 * The `zi.*` settings as VS Code holds them, turned into what the server gets
 * (see core/settings.ts for the rules).
 */

import * as fs from "node:fs";
import * as os from "node:os";
import * as vscode from "vscode";

import {
  Inspect,
  SettingSpec,
  serverOverrides,
  settingsEnvironment,
  specsFromManifest,
  startEnvironment,
  toggleTarget,
} from "./core/settings";
import { Resolution, resolveServerCommand } from "./core/serverPath";

export const SECTION = "zi";

export class ZiConfig {
  readonly specs: readonly SettingSpec[];

  constructor(packageJSON: unknown) {
    this.specs = specsFromManifest(packageJSON);
  }

  private inspect(): Inspect {
    const configuration = vscode.workspace.getConfiguration(SECTION);
    return (key) => configuration.inspect(key);
  }

  private trust(): { trusted: boolean } {
    return { trusted: vscode.workspace.isTrusted };
  }

  /** `initializationOptions.zi` and the answer to `workspace/configuration` (section zi). */
  overrides(): Record<string, unknown> {
    return serverOverrides(this.specs, this.inspect(), this.trust());
  }

  /** ZI_* variables for the settings the server reads only at start. */
  startEnv(): Record<string, string> {
    return startEnvironment(this.specs, this.inspect(), this.trust());
  }

  /** The environment for other zi-coder commands (stats): the same settings as ZI_* variables. */
  commandEnv(): Record<string, string | undefined> {
    return settingsEnvironment(this.specs, this.inspect(), this.trust(), process.env);
  }

  resolveServer(): Resolution {
    // In an untrusted workspace, `get` already ignores a workspace zi.server.path.
    const setting = vscode.workspace.getConfiguration(SECTION).get<string>("server.path", "");
    return resolveServerCommand({
      setting,
      pathEnv: process.env.PATH ?? "",
      pathExt: process.env.PATHEXT,
      platform: process.platform,
      homeDir: os.homedir(),
      workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath),
      trusted: vscode.workspace.isTrusted,
      isExecutable,
    });
  }

  /** `zi.acceptanceEvents`: "approximate" even where VS Code allows the proposed API. */
  approximateEvents(): boolean {
    return vscode.workspace.getConfiguration(SECTION).get<string>("acceptanceEvents", "auto") === "approximate";
  }

  completionsEnabled(): boolean {
    return vscode.workspace.getConfiguration(SECTION).get<boolean>("completion.enabled", true);
  }

  configuredModel(): { model: string; url: string } {
    const configuration = vscode.workspace.getConfiguration(SECTION);
    return {
      model: configuration.get<string>("inference.model", "") ?? "",
      url: configuration.get<string>("inference.url", "") ?? "",
    };
  }

  async setCompletionsEnabled(enabled: boolean): Promise<void> {
    const configuration = vscode.workspace.getConfiguration(SECTION);
    const target = toggleTarget(configuration.inspect("completion.enabled"));
    const scope =
      target === "workspaceFolder"
        ? vscode.ConfigurationTarget.WorkspaceFolder
        : target === "workspace"
          ? vscode.ConfigurationTarget.Workspace
          : vscode.ConfigurationTarget.Global;
    await configuration.update("completion.enabled", enabled, scope);
  }

  /** What needs a new server process when it changes: the executable and its environment. */
  startSignature(): string {
    const resolution = this.resolveServer();
    return JSON.stringify({ command: resolution.found ? resolution.command : null, env: this.startEnv() });
  }
}

function isExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (process.platform === "win32") {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
