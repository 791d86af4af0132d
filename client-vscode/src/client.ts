/**
 * The language client: starts `zi-coder serve` over stdio, keeps it configured, and
 * feeds the status bar.
 *
 * - Settings: `initializationOptions: {zi: ...}` at start; `workspace/configuration`
 *   (section `zi`) answered by middleware with the same overrides (not VS Code's
 *   full section with every default, which would override the server's `ZI_*`
 *   environment); a change is pushed with `workspace/didChangeConfiguration`, except
 *   for the executable and the start-only keys, which restart the server.
 * - Log: the server's stderr, line by line at its own level, and its
 *   `window/logMessage`, in the "Zi Coder" log channel.
 * - Status: `window/showMessage` problems, "using model ..." announcements, work-done
 *   progress, and the client's state.
 */

import * as vscode from "vscode";
import {
  CloseAction,
  CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorAction,
  ErrorHandlerResult,
  LanguageClient,
  LanguageClientOptions,
  LogMessageNotification,
  Message,
  RevealOutputChannelOn,
  ServerOptions,
  ShowMessageNotification,
  State,
} from "vscode-languageclient/node";

import { ZiConfig } from "./config";
import { RestartPolicy } from "./core/restarts";
import { MessageType, StderrClassifier, interpretMessage } from "./core/serverMessages";
import { missingServerMessage } from "./core/serverPath";
import { StatusBar } from "./statusBar";

export const CLIENT_ID = "zi";
export const CLIENT_NAME = "Zi Coder";
/** Every file and unsaved buffer: the server decides what it can complete and check. */
export const DOCUMENT_SELECTOR = [{ scheme: "file" }, { scheme: "untitled" }];

export interface ClientDeps {
  readonly config: ZiConfig;
  readonly status: StatusBar;
  readonly log: vscode.LogOutputChannel;
  /** LSP messages, recorded while this channel's log level is Trace. */
  readonly trace: vscode.LogOutputChannel;
  readonly extensionUri: vscode.Uri;
}

export class ZiClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private lastOverrides = "";
  private lastStart = "";
  private stopping = false;
  private wanted = false;
  /** Crash restarts: 4 in 3 minutes, then the client gives up (vscode-languageclient's rule). */
  private readonly crashes = new RestartPolicy();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ClientDeps) {}

  get current(): LanguageClient | undefined {
    return this.client;
  }

  /** Start, stop and restart run one at a time, in order. */
  private serialize(task: () => Promise<void>): Promise<void> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Whether the server was asked to start: it starts with the first file (see extension.ts). */
  get requested(): boolean {
    return this.wanted;
  }

  start(): Promise<void> {
    this.wanted = true;
    return this.serialize(() => this.doStart());
  }

  stop(): Promise<void> {
    return this.serialize(() => this.doStop());
  }

  /** A restart the user asked for (the command, or a setting): crashes before it no longer count. */
  restart(): Promise<void> {
    this.wanted = true;
    return this.serialize(async () => {
      this.crashes.reset();
      await this.doStop();
      await this.doStart();
    });
  }

  /** A `zi.*` setting changed: push it, or restart when the process itself must change. */
  async configurationChanged(): Promise<void> {
    if (!this.wanted) {
      return; // not started yet: it starts with these settings
    }
    if (this.deps.config.startSignature() !== this.lastStart) {
      this.deps.log.info("Server path or start-time settings changed: restarting the server");
      await this.restart();
      return;
    }
    const overrides = this.deps.config.overrides();
    const serialized = JSON.stringify(overrides);
    if (this.client === undefined || !this.client.isRunning() || serialized === this.lastOverrides) {
      return; // a client that starts later sends them in initializationOptions
    }
    this.lastOverrides = serialized;
    await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: { zi: overrides } });
  }

  private async doStart(): Promise<void> {
    const { config, status, log } = this.deps;
    status.dispatch({ type: "starting" });
    this.lastStart = config.startSignature();
    const resolution = config.resolveServer();
    if (!resolution.found) {
      const message = missingServerMessage(resolution);
      log.error(`${message} Tried: ${resolution.tried.join(", ") || "nothing"}`);
      status.dispatch({ type: "failed", reason: "zi-coder not found (see Zi: Open Log)" });
      void this.offerInstallHelp(message);
      return;
    }
    const env = { ...process.env, ...config.startEnv() };
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    // No `transport` on purpose: TransportKind.stdio would append `--stdio` to the
    // arguments, which `zi-coder serve` does not take; without it the client still
    // talks over the process's stdin/stdout.
    const serverOptions: ServerOptions = {
      command: resolution.command,
      args: ["serve"],
      options: { env, ...(folder !== undefined ? { cwd: folder } : {}) },
    };
    const client = new LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, this.clientOptions());
    this.client = client;
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        status.dispatch({ type: "running" });
      } else if (event.newState === State.Starting) {
        status.dispatch({ type: "starting" });
      } else if (event.newState === State.Stopped && !this.stopping && status.current.phase !== "failed") {
        status.dispatch({ type: "stopped" });
      }
    });
    // Replace the client's own handlers (registered before ours) to also read the news.
    client.onNotification(ShowMessageNotification.type, (params) => this.onShowMessage(params.type, params.message));
    client.onNotification(LogMessageNotification.type, (params) => this.onLogMessage(params.type, params.message));
    log.info(`Starting ${resolution.command} serve`);
    try {
      await client.start();
      this.lastOverrides = JSON.stringify(config.overrides());
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      log.error(`The server did not start: ${reason}`);
      status.dispatch({ type: "failed", reason });
      void vscode.window
        .showErrorMessage(`Zi Coder: the server did not start: ${reason}`, "Open Log")
        .then((choice) => (choice === "Open Log" ? log.show() : undefined));
    }
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) {
      return;
    }
    this.stopping = true;
    try {
      // shutdown (the server flushes its history first), exit, then the process ends.
      await client.dispose(5000);
    } catch (error) {
      this.deps.log.warn(`Stopping the server: ${String(error)}`);
    } finally {
      this.stopping = false;
    }
  }

  private clientOptions(): LanguageClientOptions {
    const { config, status, log } = this.deps;
    const stderr = new StderrClassifier();
    const errorHandler = {
      error: (error: Error, message: Message | undefined, count: number | undefined): ErrorHandlerResult => {
        log.error(`Connection problem: ${error.message}${message ? ` (${JSON.stringify(message)})` : ""}`);
        return { action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown };
      },
      closed: (): CloseHandlerResult => this.onClosed(),
    };
    return {
      documentSelector: DOCUMENT_SELECTOR,
      outputChannel: log,
      traceOutputChannel: this.deps.trace,
      revealOutputChannelOn: RevealOutputChannelOn.Never, // the status bar tells
      initializationOptions: () => ({ zi: config.overrides() }),
      errorHandler,
      stdioOptions: {
        stdout: () => undefined, // stdout is JSON-RPC
        stderr: (input, channel) => {
          let buffered = "";
          input.setEncoding("utf8");
          input.on("data", (chunk: string) => {
            buffered += chunk;
            const lines = buffered.split(/\r?\n/);
            buffered = lines.pop() ?? "";
            for (const line of lines) {
              if (line.trim() === "") {
                continue;
              }
              const { level, text } = stderr.classify(line);
              channel[level](text);
            }
          });
        },
      },
      middleware: {
        // Our provider (inline.ts) sends textDocument/inlineCompletion; the client's
        // built-in one would show every suggestion twice.
        provideInlineCompletionItems: () => undefined,
        // The server's textDocument/completion item is the same suggestion, for
        // clients without ghost text. Here it would open the suggest widget over the
        // ghost text (Tab then accepts the widget's item), cost a second model call
        // per keystroke, and record every suggestion twice.
        provideCompletionItem: () => undefined,
        workspace: {
          configuration: async (params, token, next) => {
            status.dispatch({ type: "ready" }); // asked from the server's `initialized` handler
            const answers = await next(params, token);
            if (!Array.isArray(answers)) {
              return answers;
            }
            return params.items.map((item, index) =>
              item.section === "zi" ? config.overrides() : answers[index],
            );
          },
        },
        handleWorkDoneProgress: (token, params, next) => {
          const key = String(token);
          if (params.kind === "begin") {
            status.dispatch({ type: "progressBegin", token: key, title: params.title });
          } else if (params.kind === "end") {
            status.dispatch({ type: "progressEnd", token: key });
          }
          next(token, params);
        },
      },
    };
  }

  private onClosed(): CloseHandlerResult {
    if (this.stopping) {
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    if (!this.crashes.crashed(Date.now())) {
      const minutes = Math.round(this.crashes.windowMs / 60_000);
      const reason = `the server stopped ${this.crashes.max + 1} times in ${minutes} minutes; not restarting`;
      this.deps.status.dispatch({ type: "failed", reason });
      void vscode.window
        .showErrorMessage(`Zi Coder: ${reason}. See the log, then run Zi: Restart Server.`, "Open Log")
        .then((choice) => (choice === "Open Log" ? this.deps.log.show() : undefined));
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    this.deps.log.warn("The server stopped; restarting it");
    return { action: CloseAction.Restart, handled: true };
  }

  private onShowMessage(type: number, message: string): void {
    this.deps.status.dispatch({ type: "ready" });
    const news = interpretMessage(type, message, true);
    if (news.kind === "problem") {
      this.deps.status.dispatch({ type: "problem", severity: news.severity, message: news.message });
    } else if (news.kind === "model") {
      this.deps.status.dispatch({ type: "model", name: news.name });
    }
    const show =
      type === MessageType.Error
        ? vscode.window.showErrorMessage
        : type === MessageType.Warning
          ? vscode.window.showWarningMessage
          : vscode.window.showInformationMessage;
    void show(message, "Open Log").then((choice) => (choice === "Open Log" ? this.deps.log.show() : undefined));
  }

  private onLogMessage(type: number, message: string): void {
    // The server logs every such message to stderr too (already in the channel at its
    // level): keep this copy out of sight unless the channel shows debug output.
    this.deps.log.debug(`window/logMessage (${type}): ${message}`);
    this.deps.status.dispatch({ type: "ready" });
    const news = interpretMessage(type, message, false);
    if (news.kind === "model") {
      this.deps.status.dispatch({ type: "model", name: news.name });
    } else if (news.kind === "resolved") {
      this.deps.status.dispatch({ type: "resolved" });
    }
  }

  private async offerInstallHelp(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(message, "How to Install", "Set Path", "Open Log");
    if (choice === "How to Install") {
      const readme = await this.readme();
      if (readme !== undefined) {
        await vscode.commands.executeCommand("markdown.showPreview", readme);
      } else {
        this.deps.log.show();
      }
    } else if (choice === "Set Path") {
      // A machine setting: in a remote window (Remote SSH, WSL, code-server) the User tab
      // does not list it (VS Code ignores it in the local user settings), the Remote one does.
      const remote = vscode.env.remoteName !== undefined;
      await vscode.commands.executeCommand(
        remote ? "workbench.action.openRemoteSettings" : "workbench.action.openSettings",
        { query: "zi.server.path" },
      );
    } else if (choice === "Open Log") {
      this.deps.log.show();
    }
  }

  /** The extension's README: vsce stores it as readme.md; a development checkout has README.md. */
  private async readme(): Promise<vscode.Uri | undefined> {
    for (const name of ["readme.md", "README.md"]) {
      const uri = vscode.Uri.joinPath(this.deps.extensionUri, name);
      try {
        await vscode.workspace.fs.stat(uri);
        return uri;
      } catch {
        // not this name
      }
    }
    this.deps.log.warn(`No README in ${this.deps.extensionUri.fsPath}`);
    return undefined;
  }

  dispose(): void {
    void this.stop();
  }
}
