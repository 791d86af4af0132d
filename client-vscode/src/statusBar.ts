/** The status bar item: renders core/status.ts's view; clicking opens the Zi menu. */

import * as vscode from "vscode";

import { StatusEvent, StatusState, initialState, reduce, view } from "./core/status";

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private state: StatusState;
  private headline = "";

  constructor(
    configured: Partial<StatusState>,
    private readonly onChange: (headline: string) => void = () => undefined,
  ) {
    this.item = vscode.window.createStatusBarItem("zi.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "Zi Coder";
    this.item.command = "zi.showMenu";
    this.state = initialState(configured);
    this.render();
    this.item.show();
  }

  get current(): StatusState {
    return this.state;
  }

  dispatch(event: StatusEvent): void {
    const next = reduce(this.state, event);
    if (next !== this.state) {
      this.state = next;
      this.render();
    }
  }

  private render(): void {
    const shown = view(this.state);
    if (shown.headline !== this.headline) {
      this.headline = shown.headline;
      this.onChange(shown.headline);
    }
    this.item.text = shown.text;
    this.item.tooltip = shown.tooltip;
    this.item.backgroundColor =
      shown.kind === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : shown.kind === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
    // For tests and screen readers: the state in words.
    this.item.accessibilityInformation = { label: shown.headline, role: "button" };
  }

  dispose(): void {
    this.item.dispose();
  }
}
