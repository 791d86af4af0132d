/**
 * Zi Coder for VS Code: the extension's entry point.
 *
 * Wires the parts together: the language client (client.ts) that runs
 * `zi-coder serve` (from the first file the window opens), the inline completion provider with its acceptance events
 * (inline.ts), the status bar (statusBar.ts) and the commands (commands.ts).
 * Diagnostics, quick fixes (code actions with resolve) and work-done progress are
 * vscode-languageclient's standard features. Logic that needs no editor lives in
 * core/ and is unit-tested without VS Code.
 */

import * as vscode from "vscode";

import { DOCUMENT_SELECTOR, ZiClient } from "./client";
import { registerCommands } from "./commands";
import { SECTION, ZiConfig } from "./config";
import { ZiInlineCompletions } from "./inline";
import { StatusBar } from "./statusBar";

let client: ZiClient | undefined;

export interface ZiApi {
  /** "proposed-api" when VS Code reports shown/partially accepted suggestions itself. */
  readonly acceptanceEvents: "proposed-api" | "approximate";
}

export async function activate(context: vscode.ExtensionContext): Promise<ZiApi> {
  const log = vscode.window.createOutputChannel("Zi Coder", { log: true });
  const trace = vscode.window.createOutputChannel("Zi Coder (trace)", { log: true });
  const config = new ZiConfig(context.extension.packageJSON);
  const configured = config.configuredModel();
  const status = new StatusBar(
    {
      completionsEnabled: config.completionsEnabled(),
      configuredModel: configured.model,
      configuredUrl: configured.url,
      phase: "waiting",
    },
    (headline) => log.debug(`status: ${headline}`),
  );
  const zi = new ZiClient({ config, status, log, trace, extensionUri: context.extensionUri });
  client = zi;
  const inline = new ZiInlineCompletions({
    client: () => zi.current,
    enabled: () => config.completionsEnabled(),
    status,
    log,
  });
  let mode = inline.register(DOCUMENT_SELECTOR, config.approximateEvents());
  log.info(`Zi Coder ${String(context.extension.packageJSON.version)}; acceptance events: ${mode}`);

  context.subscriptions.push(
    log,
    trace,
    status,
    inline,
    zi,
    ...registerCommands({ config, client: zi, inline, log }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration(SECTION)) {
        return;
      }
      if (event.affectsConfiguration(`${SECTION}.acceptanceEvents`)) {
        mode = inline.register(DOCUMENT_SELECTOR, config.approximateEvents());
        log.info(`Acceptance events: ${mode}`);
      }
      const model = config.configuredModel();
      log.debug(`zi.* settings changed; inline completions ${config.completionsEnabled() ? "on" : "off"}`);
      status.dispatch({
        type: "configured",
        completionsEnabled: config.completionsEnabled(),
        model: model.model,
        url: model.url,
      });
      void zi.configurationChanged();
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void zi.configurationChanged()),
    vscode.workspace.onDidCloseTextDocument((document) => inline.book.forgetDocument(document.uri.toString())),
    vscode.workspace.onDidOpenTextDocument((document) => startFor(document)),
  );

  // Activation is onStartupFinished, in every window, because the server serves every
  // file (DOCUMENT_SELECTOR): Markdown, JSON, a Makefile as much as Python. The server
  // itself starts with the first such document, so a window without files costs no
  // process. Activation does not wait for it.
  function startFor(document: vscode.TextDocument): boolean {
    if (zi.requested || vscode.languages.match(DOCUMENT_SELECTOR, document) === 0) {
      return false;
    }
    log.info(`First file: ${document.uri.scheme === "file" ? document.uri.fsPath : document.uri.toString()}`);
    void zi.start();
    return true;
  }
  vscode.workspace.textDocuments.some(startFor);
  return {
    get acceptanceEvents() {
      return mode;
    },
  };
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
