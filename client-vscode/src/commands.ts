/** The command palette: enable/disable completions, stats, restart, log, the status menu. */

import { execFile } from "node:child_process";
import * as vscode from "vscode";

import { ZiClient } from "./client";
import { ZiConfig } from "./config";
import { STATS_ARGS, interpretStats } from "./core/stats";
import { ZiInlineCompletions } from "./inline";

export interface CommandDeps {
  readonly config: ZiConfig;
  readonly client: ZiClient;
  readonly inline: ZiInlineCompletions;
  readonly log: vscode.LogOutputChannel;
}

/**
 * The stats report is a read-only virtual document (scheme `zi-stats`): no "save
 * changes?" prompt when it is closed, and running the command again refreshes it.
 */
const STATS_SCHEME = "zi-stats";
const STATS_URI = vscode.Uri.from({ scheme: STATS_SCHEME, path: "Zi Coder Stats" });

class StatsDocument implements vscode.TextDocumentContentProvider {
  private text = "";
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  provideTextDocumentContent(): string {
    return this.text;
  }

  show(text: string): void {
    this.text = text;
    this.changed.fire(STATS_URI);
  }
}

export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  const { config, client, inline, log } = deps;
  const stats = new StatsDocument();
  return [
    vscode.workspace.registerTextDocumentContentProvider(STATS_SCHEME, stats),
    vscode.commands.registerCommand("zi.enableCompletions", () => config.setCompletionsEnabled(true)),
    vscode.commands.registerCommand("zi.disableCompletions", () => config.setCompletionsEnabled(false)),
    vscode.commands.registerCommand("zi.showStats", () => showStats(config, log, stats)),
    vscode.commands.registerCommand("zi.restartServer", () => client.restart()),
    vscode.commands.registerCommand("zi.openLog", () => log.show()),
    vscode.commands.registerCommand("zi.showMenu", () => showMenu(config)),
    vscode.commands.registerCommand("zi.acceptNextWord", () => inline.acceptPartially("word")),
    vscode.commands.registerCommand("zi.acceptNextLine", () => inline.acceptPartially("line")),
  ];
}

async function showMenu(config: ZiConfig): Promise<void> {
  const enabled = config.completionsEnabled();
  const items: (vscode.QuickPickItem & { command: string })[] = [
    enabled
      ? { label: "$(circle-slash) Disable Inline Completions", command: "zi.disableCompletions" }
      : { label: "$(sparkle) Enable Inline Completions", command: "zi.enableCompletions" },
    { label: "$(graph) Show Completion Stats", command: "zi.showStats" },
    { label: "$(debug-restart) Restart Server", command: "zi.restartServer" },
    { label: "$(output) Open Log", command: "zi.openLog" },
    { label: "$(gear) Settings", command: "workbench.action.openSettings" },
  ];
  const choice = await vscode.window.showQuickPick(items, { title: "Zi Coder" });
  if (choice !== undefined) {
    const args = choice.command === "workbench.action.openSettings" ? ["@ext:zi-coder.zi-coder"] : [];
    await vscode.commands.executeCommand(choice.command, ...args);
  }
}

async function showStats(config: ZiConfig, log: vscode.LogOutputChannel, stats: StatsDocument): Promise<void> {
  const resolution = config.resolveServer();
  if (!resolution.found) {
    void vscode.window.showErrorMessage(`Zi Coder: zi-coder not found (${resolution.reason})`);
    return;
  }
  const run = await new Promise<{ code: number | null; stdout: string; stderr: string; error?: string }>(
    (resolve) => {
      execFile(
        resolution.command,
        [...STATS_ARGS],
        { env: config.commandEnv(), timeout: 30_000, maxBuffer: 4 << 20 },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
          const failure = error !== null && code === null ? error.message : undefined;
          resolve({ code, stdout, stderr, ...(failure !== undefined ? { error: failure } : {}) });
        },
      );
    },
  );
  const outcome = interpretStats(run);
  if (outcome.kind === "output") {
    stats.show(outcome.text);
    const document = await vscode.workspace.openTextDocument(STATS_URI);
    await vscode.window.showTextDocument(document, { preview: true });
  } else if (outcome.kind === "unsupported") {
    void vscode.window.showInformationMessage(outcome.message);
  } else {
    log.error(outcome.message);
    void vscode.window.showErrorMessage(outcome.message);
  }
}
