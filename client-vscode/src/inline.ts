/**
 * Ghost text: our own `InlineCompletionItemProvider` for `textDocument/inlineCompletion`.
 *
 * vscode-languageclient (10+) has an inline completion feature, but its provider
 * cannot carry the acceptance hooks (`handleDidShowCompletionItem`,
 * `handleDidPartiallyAcceptCompletionItem`, proposed API `inlineCompletionsAdditions`),
 * so the client's provider is silenced by middleware (client.ts) and this one sends the
 * same request through the client, with the client's own converters. An item keeps
 * its `command` (`zi.acceptCompletion` + the completion id), which VS Code runs on
 * accept; the client registered that command from the server's
 * `executeCommandProvider`, so it reaches the server as `workspace/executeCommand`.
 *
 * Where the proposal is not enabled (stable VS Code without
 * `--enable-proposed-api zi-coder.zi-coder`), registering a provider with the hooks
 * throws; a provider without them is registered instead, "shown" is approximated
 * (core/acceptance.ts `probablyShown`), and partial acceptance is measured by
 * `zi.acceptNextWord` / `zi.acceptNextLine`, which wrap VS Code's commands.
 */

import * as vscode from "vscode";
import { InlineCompletionRequest, LanguageClient } from "vscode-languageclient/node";

import { AcceptanceBook, acceptedPrefixLength, completionIdOf, partialLengthOf, probablyShown } from "./core/acceptance";
import { StatusBar } from "./statusBar";

export const DID_SHOW = "zi/didShowCompletion";
export const DID_PARTIALLY_ACCEPT = "zi/didPartiallyAcceptCompletion";
/** Context key: partial acceptance is tracked by our key bindings (no proposed API). */
export const TRACK_BY_KEYS_CONTEXT = "zi.trackPartialAcceptByKeys";

export type HookMode = "proposed-api" | "approximate";

export interface InlineDeps {
  readonly client: () => LanguageClient | undefined;
  readonly enabled: () => boolean;
  readonly status: StatusBar;
  readonly log: vscode.LogOutputChannel;
}

export class ZiInlineCompletions implements vscode.Disposable {
  readonly book = new AcceptanceBook();
  private readonly ids = new WeakMap<vscode.InlineCompletionItem, string>();
  private registration: vscode.Disposable | undefined;
  private hookMode: HookMode = "approximate";

  constructor(private readonly deps: InlineDeps) {}

  get mode(): HookMode {
    return this.hookMode;
  }

  /** Registers the provider; `approximate` skips the proposed hooks even where allowed. */
  register(selector: vscode.DocumentSelector, approximate = false): HookMode {
    this.registration?.dispose();
    const provide = this.provide.bind(this);
    const withHooks = {
      provideInlineCompletionItems: provide,
      handleDidShowCompletionItem: (item: vscode.InlineCompletionItem) => this.didShow(item),
      // Called as (item, acceptedLength: number) and, in newer VS Code, again as
      // (item, info: PartialAcceptInfo); the book drops the duplicate.
      handleDidPartiallyAcceptCompletionItem: (item: vscode.InlineCompletionItem, info: unknown) =>
        this.didPartiallyAccept(item, info),
    };
    try {
      if (approximate) {
        throw new Error("zi.acceptanceEvents is approximate");
      }
      this.registration = vscode.languages.registerInlineCompletionItemProvider(selector, withHooks);
      this.hookMode = "proposed-api";
    } catch (error) {
      this.deps.log.info(`Acceptance events approximated (${error instanceof Error ? error.message : String(error)})`);
      this.registration = vscode.languages.registerInlineCompletionItemProvider(selector, {
        provideInlineCompletionItems: provide,
      });
      this.hookMode = "approximate";
    }
    void vscode.commands.executeCommand("setContext", TRACK_BY_KEYS_CONTEXT, this.hookMode === "approximate");
    return this.hookMode;
  }

  async provide(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionList | undefined> {
    const client = this.deps.client();
    if (client === undefined || !client.isRunning() || !this.deps.enabled()) {
      return undefined;
    }
    const requestVersion = document.version;
    this.deps.status.dispatch({ type: "requestStarted" });
    let ok = false;
    let count = 0;
    try {
      const params = client.code2ProtocolConverter.asInlineCompletionParams(document, position, context);
      const result = await client.sendRequest(InlineCompletionRequest.type, params, token);
      ok = true;
      if (token.isCancellationRequested || result === null || result === undefined) {
        return undefined;
      }
      const converted = await client.protocol2CodeConverter.asInlineCompletionResult(result, token);
      const items = converted === undefined ? [] : Array.isArray(converted) ? converted : converted.items;
      count = items.length;
      this.track(document, position, items);
      this.deps.log.debug(
        `inlineCompletion ${document.uri.fsPath}:${position.line + 1}:${position.character + 1} → ` +
          (items.map((item) => `${this.ids.get(item) ?? "?"} ${JSON.stringify(item.insertText)}`).join(", ") || "nothing"),
      );
      if (this.hookMode === "approximate") {
        this.approximateShown(document, position, requestVersion, items, token);
      }
      return new vscode.InlineCompletionList(items);
    } catch (error) {
      return client.handleFailedRequest(InlineCompletionRequest.type, token, error, undefined, false);
    } finally {
      this.deps.status.dispatch({ type: "requestEnded", ok, items: count });
    }
  }

  private track(document: vscode.TextDocument, position: vscode.Position, items: vscode.InlineCompletionItem[]): void {
    for (const item of items) {
      const id = completionIdOf(item.command);
      if (id === undefined) {
        continue;
      }
      this.ids.set(item, id);
      const start = item.range?.start ?? position;
      this.book.produced({
        id,
        uri: document.uri.toString(),
        line: start.line,
        character: start.character,
        insertText: typeof item.insertText === "string" ? item.insertText : item.insertText.value,
      });
    }
  }

  private approximateShown(
    document: vscode.TextDocument,
    position: vscode.Position,
    requestVersion: number,
    items: vscode.InlineCompletionItem[],
    token: vscode.CancellationToken,
  ): void {
    const editor = vscode.window.activeTextEditor;
    const first = items[0];
    if (editor === undefined || first === undefined) {
      return;
    }
    const shown = probablyShown({
      cancelled: token.isCancellationRequested,
      sameDocument: editor.document === document,
      requestVersion,
      currentVersion: document.version,
      selectionEmpty: editor.selection.isEmpty,
      cursorAtRequest: editor.selection.active.isEqual(position),
    });
    if (shown) {
      this.didShow(first);
    }
  }

  didShow(item: vscode.InlineCompletionItem): void {
    const id = this.ids.get(item) ?? completionIdOf(item.command);
    if (id !== undefined && this.book.markShown(id)) {
      this.deps.log.debug(`shown ${id}`);
      this.notify(DID_SHOW, { id });
    }
  }

  didPartiallyAccept(item: vscode.InlineCompletionItem, info: unknown): void {
    const id = this.ids.get(item) ?? completionIdOf(item.command);
    const length = partialLengthOf(info);
    if (id === undefined || length === undefined) {
      return;
    }
    this.book.markShown(id);
    const report = this.book.partial(id, length);
    if (report !== undefined) {
      this.deps.log.debug(`partially accepted ${id}: ${report} code points`);
      this.notify(DID_PARTIALLY_ACCEPT, { id, acceptedLength: report });
    }
  }

  /**
   * `zi.acceptNextWord` / `zi.acceptNextLine`: run VS Code's partial accept, then
   * measure how much of the suggestion shown in this editor is now in the document.
   */
  async acceptPartially(kind: "word" | "line"): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const command =
      kind === "word" ? "editor.action.inlineSuggest.acceptNextWord" : "editor.action.inlineSuggest.acceptNextLine";
    const before = editor?.selection.active;
    const shown = editor ? this.book.lastShown(editor.document.uri.toString()) : undefined;
    await vscode.commands.executeCommand(command);
    if (editor === undefined || shown === undefined || before === undefined) {
      return;
    }
    if (editor.selection.active.isEqual(before)) {
      await selectionMoved(editor, 200);
    }
    const start = new vscode.Position(shown.line, shown.character);
    const cursor = editor.selection.active;
    if (cursor.isBeforeOrEqual(start)) {
      return;
    }
    const length = acceptedPrefixLength(shown.insertText, editor.document.getText(new vscode.Range(start, cursor)));
    if (length === undefined) {
      return;
    }
    const report = this.book.partial(shown.id, length);
    if (report !== undefined) {
      this.deps.log.debug(`partially accepted ${shown.id}: ${report} code points (measured)`);
      this.notify(DID_PARTIALLY_ACCEPT, { id: shown.id, acceptedLength: report });
    }
  }

  private notify(method: string, params: object): void {
    const client = this.deps.client();
    if (client === undefined || !client.isRunning()) {
      return;
    }
    client.sendNotification(method, params).catch((error: unknown) => {
      this.deps.log.warn(`${method} not sent: ${String(error)}`);
    });
  }

  dispose(): void {
    this.registration?.dispose();
  }
}

/** Resolves when the editor's selection changes, or after `timeoutMs`. */
function selectionMoved(editor: vscode.TextEditor, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    const listener = vscode.window.onDidChangeTextEditorSelection((event) => {
      if (event.textEditor === editor) {
        done();
      }
    });
    function done(): void {
      clearTimeout(timer);
      listener.dispose();
      resolve();
    }
  });
}
