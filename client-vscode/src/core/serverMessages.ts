/**
 * Reading what the server says, for the status bar and the log.
 *
 * - `window/showMessage` is how the server reports a lasting problem (model server
 *   down, unknown model, invalid settings): it becomes the status bar's problem.
 * - `window/logMessage` carries the good news: "using model 'X' ..." names the model
 *   in use, and "... answers again" / "... accepts requests again" / "settings
 *   updated from the client" end a problem (see server/notify.py and
 *   server/completion/backend.py for the wording).
 * - stderr is the server's Python log, `%(asctime)s %(levelname)s %(name)s: %(message)s`;
 *   each line goes to the "Zi Coder" log channel at its own level.
 */

/** LSP MessageType. */
export const MessageType = { Error: 1, Warning: 2, Info: 3, Log: 4, Debug: 5 } as const;

export type ServerNews =
  | { readonly kind: "problem"; readonly severity: "error" | "warning"; readonly message: string }
  | { readonly kind: "resolved" }
  | { readonly kind: "model"; readonly name: string }
  | { readonly kind: "none" };

const MODEL = /\busing model (['"])(.+?)\1/;
const RESOLVED = /(answers again|accepts requests again|works again|reachable again|settings updated from the client)/;

/** What a `window/showMessage` or `window/logMessage` means for the status bar. */
export function interpretMessage(type: number, message: string, shown: boolean): ServerNews {
  const text = stripPrefix(message);
  if (shown && (type === MessageType.Error || type === MessageType.Warning)) {
    return { kind: "problem", severity: type === MessageType.Error ? "error" : "warning", message: text };
  }
  const model = MODEL.exec(text);
  if (model !== null) {
    return { kind: "model", name: model[2] };
  }
  if (type >= MessageType.Info && RESOLVED.test(text)) {
    return { kind: "resolved" };
  }
  return { kind: "none" };
}

/** The server prefixes user-facing messages with "Zi: ". */
export function stripPrefix(message: string): string {
  return message.startsWith("Zi: ") ? message.slice(4) : message;
}

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

const LOG_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/;
const LEVELS: Record<string, LogLevel> = {
  DEBUG: "info",
  INFO: "info",
  WARNING: "warn",
  ERROR: "error",
  CRITICAL: "error",
};

/**
 * Classifies stderr lines. A line without the log prefix (a traceback, a warning
 * printed by a library) continues the previous record at its level; before any
 * record, it is a warning (Python writes startup failures there). DEBUG records go
 * out at info level, marked "[debug]": `zi.log_level` already chose them, and the
 * channel's own level (info by default) would hide them again.
 */
export class StderrClassifier {
  private last: LogLevel = "warn";

  classify(line: string): { readonly level: LogLevel; readonly text: string } {
    const match = LOG_LINE.exec(line);
    if (match === null) {
      return { level: this.last, text: line };
    }
    this.last = LEVELS[match[1]] ?? "info";
    // The log channel stamps its own time: keep "logger: message".
    return { level: this.last, text: match[1] === "DEBUG" ? `[debug] ${match[2]}` : match[2] };
  }
}
