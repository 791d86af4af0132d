/**
 * Bookkeeping for what the user did with each suggestion, so the server's history
 * gets `zi/didShowCompletion {id}` once per suggestion and
 * `zi/didPartiallyAcceptCompletion {id, acceptedLength}` once per step forward, the
 * length in code points (the server compares it with Python's `len` of the text; VS
 * Code and JavaScript count UTF-16 code units, which differ for emoji and other
 * astral characters).
 *
 * VS Code reports showing and partial acceptance only through the proposed API
 * `inlineCompletionsAdditions` (`handleDidShowCompletionItem`,
 * `handleDidPartiallyAcceptCompletionItem`). Recent versions call the partial
 * handler twice per step (the deprecated `acceptedLength: number` form, then
 * `PartialAcceptInfo`), so reports are deduplicated here: a length is sent only if
 * it goes beyond what was already reported for that suggestion.
 *
 * Without the proposal, the extension approximates both (see README):
 * "shown" when a suggestion comes back while the cursor is still where it was asked
 * for, and partial acceptance by measuring what `acceptNextWord`/`acceptNextLine`
 * inserted (`acceptedPrefixLength`).
 */

/** The server's accept command; its first argument is the completion id. */
export const ACCEPT_COMMAND = "zi.acceptCompletion";

export interface TrackedSuggestion {
  readonly id: string;
  readonly uri: string;
  /** Where the suggestion's range starts (its text is inserted there). */
  readonly line: number;
  readonly character: number;
  readonly insertText: string;
}

interface Entry {
  readonly suggestion: TrackedSuggestion;
  shown: boolean;
  reportedLength: number;
}

export class AcceptanceBook {
  private readonly entries = new Map<string, Entry>();
  private readonly lastShownByUri = new Map<string, string>();

  constructor(private readonly limit = 256) {}

  /** A suggestion the server returned. */
  produced(suggestion: TrackedSuggestion): void {
    if (this.entries.has(suggestion.id)) {
      return; // the same suggestion again (e.g. from the server's cache): keep its history
    }
    this.entries.set(suggestion.id, { suggestion, shown: false, reportedLength: 0 });
    while (this.entries.size > this.limit) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  get(id: string): TrackedSuggestion | undefined {
    return this.entries.get(id)?.suggestion;
  }

  /** Marks a suggestion as shown; true the first time only (send didShow then). */
  markShown(id: string): boolean {
    const entry = this.entries.get(id);
    if (entry === undefined) {
      return false;
    }
    this.lastShownByUri.set(entry.suggestion.uri, id);
    if (entry.shown) {
      return false;
    }
    entry.shown = true;
    return true;
  }

  /** The suggestion most recently shown in this document. */
  lastShown(uri: string): TrackedSuggestion | undefined {
    const id = this.lastShownByUri.get(uri);
    return id === undefined ? undefined : this.entries.get(id)?.suggestion;
  }

  /**
   * A partial acceptance of the suggestion's first `acceptedLength` UTF-16 code units
   * (JavaScript's and VS Code's unit): the length to report in the server's unit, code
   * points (Python's `len`), or undefined when there is nothing new to report.
   */
  partial(id: string, acceptedLength: number): number | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined || !Number.isInteger(acceptedLength) || acceptedLength <= 0) {
      return undefined;
    }
    const length = codePointLength(entry.suggestion.insertText, acceptedLength);
    if (length <= entry.reportedLength) {
      return undefined;
    }
    entry.reportedLength = length;
    return length;
  }

  forgetDocument(uri: string): void {
    this.lastShownByUri.delete(uri);
  }
}

/**
 * How many code points (what the server, in Python, counts as characters) the first
 * `utf16Length` UTF-16 code units of `text` hold: an astral character such as an emoji
 * is two units in JavaScript and one character for the server. A length beyond the
 * text counts the whole text; one that ends inside a surrogate pair leaves that
 * character out (it was not accepted whole).
 */
export function codePointLength(text: string, utf16Length: number): number {
  let end = Math.max(0, Math.min(Math.trunc(utf16Length), text.length));
  if (end > 0 && end < text.length && isHighSurrogate(text.charCodeAt(end - 1)) && isLowSurrogate(text.charCodeAt(end))) {
    end -= 1;
  }
  return [...text.slice(0, end)].length;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** The completion id carried by an item's command, if it is the server's accept command. */
export function completionIdOf(
  command: { readonly command: string; readonly arguments?: readonly unknown[] } | undefined,
): string | undefined {
  if (command === undefined || command.command !== ACCEPT_COMMAND) {
    return undefined;
  }
  const first = command.arguments?.[0];
  return typeof first === "string" && first.length > 0 ? first : undefined;
}

/** The length from either form VS Code passes: a number, or `PartialAcceptInfo`. */
export function partialLengthOf(info: unknown): number | undefined {
  if (typeof info === "number") {
    return info;
  }
  if (typeof info === "object" && info !== null) {
    const length = (info as { acceptedLength?: unknown }).acceptedLength;
    return typeof length === "number" ? length : undefined;
  }
  return undefined;
}

/**
 * How much of `insertText` the document now holds at the suggestion's start:
 * `textSinceStart` is the document text from the suggestion's start to the cursor.
 * Undefined unless it is a non-empty prefix of the suggestion (then it was not ours,
 * or the user edited in between). CRLF documents count line breaks as one "\n",
 * the way the server's text does. The length is in UTF-16 code units, as VS Code's own
 * `acceptedLength`; `AcceptanceBook.partial` turns it into the server's code points.
 */
export function acceptedPrefixLength(insertText: string, textSinceStart: string): number | undefined {
  const typed = textSinceStart.replace(/\r\n/g, "\n");
  const text = insertText.replace(/\r\n/g, "\n");
  if (typed.length === 0 || !text.startsWith(typed)) {
    return undefined;
  }
  return typed.length;
}

/**
 * The approximation of "VS Code shows it" without the proposed API: the answer came
 * back uncancelled, for the focused editor, with the document unchanged and the
 * cursor (no selection) where the request was made.
 */
export function probablyShown(check: {
  readonly cancelled: boolean;
  readonly sameDocument: boolean;
  readonly requestVersion: number;
  readonly currentVersion: number;
  readonly selectionEmpty: boolean;
  readonly cursorAtRequest: boolean;
}): boolean {
  return (
    !check.cancelled &&
    check.sameDocument &&
    check.requestVersion === check.currentVersion &&
    check.selectionEmpty &&
    check.cursorAtRequest
  );
}
