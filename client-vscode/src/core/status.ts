/**
 * The status bar item's state machine: events in, one immutable state, one view out.
 *
 * - waiting: `$(circle-outline) Zi` until the first file opens (the server starts then)
 * - idle: `$(sparkle) Zi`
 * - generating: `$(sync~spin) Zi` while an inline completion request or a server
 *   work-done progress (code actions, generated tests) is under way
 * - problem: `$(warning) Zi` / `$(error) Zi` with the reason in the tooltip, from the
 *   server's `window/showMessage` or a failed start
 * - disabled: `$(circle-slash) Zi` when `zi.completion.enabled` is false
 *
 * The tooltip always names the model: the one the server announced ("using model
 * ..."), else the configured `zi.inference.model`, else how the server will pick it.
 */

/** "waiting": not started yet; the server starts with the first file the window opens. */
export type Phase = "waiting" | "starting" | "running" | "stopped" | "failed";
export type Severity = "error" | "warning";

export interface Problem {
  readonly severity: Severity;
  readonly message: string;
}

export interface StatusState {
  readonly phase: Phase;
  /**
   * The server answers beyond `initialize`. The server answers `initialize` before it
   * has finished importing (fast start), so "running" alone does not mean it can
   * complete yet; its first request or message after that does.
   */
  readonly ready: boolean;
  /** Why the server is not running (phase "failed"). */
  readonly failure?: string;
  readonly completionsEnabled: boolean;
  /** Inline completion requests in flight. */
  readonly requests: number;
  /** Work-done progress in flight: token → title. */
  readonly progress: Readonly<Record<string, string>>;
  readonly problem?: Problem;
  /** The model the server said it uses. */
  readonly model?: string;
  /** `zi.inference.model` and `zi.inference.url` as configured ("" when unset). */
  readonly configuredModel: string;
  readonly configuredUrl: string;
}

export type StatusEvent =
  | { readonly type: "starting" }
  | { readonly type: "running" }
  | { readonly type: "ready" }
  | { readonly type: "stopped" }
  | { readonly type: "failed"; readonly reason: string }
  | { readonly type: "requestStarted" }
  | { readonly type: "requestEnded"; readonly ok: boolean; readonly items?: number }
  | { readonly type: "progressBegin"; readonly token: string; readonly title: string }
  | { readonly type: "progressEnd"; readonly token: string }
  | { readonly type: "problem"; readonly severity: Severity; readonly message: string }
  | { readonly type: "resolved" }
  | { readonly type: "model"; readonly name: string }
  | {
      readonly type: "configured";
      readonly completionsEnabled: boolean;
      readonly model: string;
      readonly url: string;
    };

export type ViewKind = "normal" | "warning" | "error";

export interface StatusView {
  readonly text: string;
  /** The first line of the tooltip: the state in words (also the accessibility label). */
  readonly headline: string;
  readonly tooltip: string;
  readonly kind: ViewKind;
}

export function initialState(configured?: Partial<StatusState>): StatusState {
  return {
    phase: "starting",
    ready: false,
    completionsEnabled: true,
    requests: 0,
    progress: {},
    configuredModel: "",
    configuredUrl: "",
    ...configured,
  };
}

export function reduce(state: StatusState, event: StatusEvent): StatusState {
  switch (event.type) {
    case "starting":
      // A (re)start forgets what the previous process reported.
      return {
        ...state,
        phase: "starting",
        ready: false,
        failure: undefined,
        problem: undefined,
        model: undefined,
        requests: 0,
        progress: {},
      };
    case "running":
      return { ...state, phase: "running", failure: undefined };
    case "ready":
      return state.ready ? state : { ...state, ready: true };
    case "stopped":
      return { ...state, phase: "stopped", requests: 0, progress: {} };
    case "failed":
      return { ...state, phase: "failed", failure: event.reason, requests: 0, progress: {} };
    case "requestStarted":
      return { ...state, requests: state.requests + 1 };
    case "requestEnded": {
      const requests = Math.max(0, state.requests - 1);
      // A suggestion came back: whatever was wrong with the model is over.
      const answered = event.ok && (event.items ?? 0) > 0;
      return { ...state, requests, problem: answered ? undefined : state.problem, ready: state.ready || event.ok };
    }
    case "progressBegin":
      // The server titles its progress "Zi: ..."; the headline already says Zi Coder.
      return { ...state, progress: { ...state.progress, [event.token]: event.title.replace(/^Zi: /, "") } };
    case "progressEnd": {
      if (!(event.token in state.progress)) {
        return state;
      }
      const progress = { ...state.progress };
      delete progress[event.token];
      return { ...state, progress };
    }
    case "problem":
      // An error is not downgraded by a later warning about something else.
      if (state.problem?.severity === "error" && event.severity === "warning") {
        return state;
      }
      return { ...state, problem: { severity: event.severity, message: event.message } };
    case "resolved":
      return { ...state, problem: undefined };
    case "model":
      return { ...state, model: event.name };
    case "configured":
      return {
        ...state,
        completionsEnabled: event.completionsEnabled,
        configuredModel: event.model,
        configuredUrl: event.url,
      };
  }
}

export function isBusy(state: StatusState): boolean {
  return state.requests > 0 || Object.keys(state.progress).length > 0;
}

export function modelLine(state: StatusState): string {
  if (state.model) {
    return `Model: ${state.model}`;
  }
  if (state.configuredModel) {
    return `Model: ${state.configuredModel} (configured)`;
  }
  const url = state.configuredUrl || "the configured server";
  return `Model: the first one served at ${url}`;
}

export function view(state: StatusState): StatusView {
  let text: string;
  let headline: string;
  let kind: ViewKind = "normal";
  const details: string[] = [];
  if (state.phase === "failed") {
    text = "$(error) Zi";
    kind = "error";
    headline = `Zi Coder: not running: ${state.failure ?? "the server stopped"}`;
  } else if (state.phase === "waiting") {
    text = "$(circle-outline) Zi";
    headline = "Zi Coder: the server starts when a file opens";
  } else if (state.phase === "stopped") {
    text = "$(debug-disconnect) Zi";
    headline = "Zi Coder: server stopped";
  } else if (state.phase === "starting" || !state.ready) {
    text = "$(sync~spin) Zi";
    headline = "Zi Coder: starting the server";
  } else if (isBusy(state)) {
    text = "$(sync~spin) Zi";
    const titles = Object.values(state.progress);
    headline = titles.length > 0 ? `Zi Coder: ${titles.join("; ")}` : "Zi Coder: generating";
  } else if (state.problem) {
    text = state.problem.severity === "error" ? "$(error) Zi" : "$(warning) Zi";
    headline = `Zi Coder: ${state.problem.severity}`;
  } else if (!state.completionsEnabled) {
    text = "$(circle-slash) Zi";
    headline = "Zi Coder: inline completions are off";
  } else {
    text = "$(sparkle) Zi";
    headline = "Zi Coder: ready";
  }
  if (state.problem && state.phase !== "failed") {
    kind = state.problem.severity;
    details.push(`${state.problem.severity === "error" ? "Error" : "Warning"}: ${state.problem.message}`);
  }
  details.push(modelLine(state));
  if (!state.completionsEnabled && !headline.endsWith("are off")) {
    details.push("Inline completions are off");
  }
  details.push("Click for Zi commands");
  return { text, headline, tooltip: [headline, ...details].join("\n"), kind };
}
