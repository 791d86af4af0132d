import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  ACCEPT_COMMAND,
  AcceptanceBook,
  TrackedSuggestion,
  acceptedPrefixLength,
  codePointLength,
  completionIdOf,
  partialLengthOf,
  probablyShown,
} from "../src/core/acceptance";

function suggestion(id: string, insertText = "return a + b\n", uri = "file:///calc.py"): TrackedSuggestion {
  return { id, uri, line: 8, character: 4, insertText };
}

describe("AcceptanceBook", () => {
  test("shown is reported once per suggestion", () => {
    const book = new AcceptanceBook();
    book.produced(suggestion("c1"));
    assert.equal(book.markShown("c1"), true);
    assert.equal(book.markShown("c1"), false);
    assert.equal(book.markShown("unknown"), false);
  });

  test("the last shown suggestion of each document", () => {
    const book = new AcceptanceBook();
    book.produced(suggestion("c1"));
    book.produced(suggestion("c2"));
    book.produced(suggestion("o1", "x", "file:///other.py"));
    book.markShown("c1");
    book.markShown("o1");
    book.markShown("c2");
    assert.equal(book.lastShown("file:///calc.py")?.id, "c2");
    assert.equal(book.lastShown("file:///other.py")?.id, "o1");
    book.forgetDocument("file:///calc.py");
    assert.equal(book.lastShown("file:///calc.py"), undefined);
  });

  test("VS Code's two calls per partial accept (number, then PartialAcceptInfo) report once", () => {
    const book = new AcceptanceBook();
    book.produced(suggestion("c1"));
    assert.equal(book.partial("c1", partialLengthOf(7)!), 7);
    assert.equal(book.partial("c1", partialLengthOf({ kind: 1, acceptedLength: 7 })!), undefined);
    assert.equal(book.partial("c1", 11), 11);
  });

  const partials: Array<[string, number[], Array<number | undefined>]> = [
    ["word by word", [7, 9, 11], [7, 9, 11]],
    ["never backwards", [9, 7], [9, undefined]],
    ["clamped to the suggestion", [50], [13]],
    ["nothing for zero or negative", [0, -3], [undefined, undefined]],
    ["nothing for fractions", [2.5], [undefined]],
  ];
  for (const [name, lengths, expected] of partials) {
    test(`partial: ${name}`, () => {
      const book = new AcceptanceBook();
      book.produced(suggestion("c1"));
      assert.deepEqual(lengths.map((length) => book.partial("c1", length)), expected);
    });
  }

  // The server compares acceptedLength with Python's len(text), in code points; VS Code
  // and JavaScript count UTF-16 code units, two for an emoji.
  test("partial: VS Code's UTF-16 lengths are reported in code points", () => {
    const book = new AcceptanceBook();
    book.produced(suggestion("c1", 'print("😀 ok")\n'));
    const throughEmoji = 'print("😀'.length; // 9 UTF-16 units, 8 code points
    assert.equal(throughEmoji, 9);
    assert.equal(book.partial("c1", throughEmoji), 8);
    assert.equal(book.partial("c1", 'print("😀 ok")'.length), 13);
    assert.equal(book.partial("c1", 1000), [...'print("😀 ok")\n'].length); // all of it: 14
  });

  test("partial: a length inside a surrogate pair leaves that character out", () => {
    const book = new AcceptanceBook();
    book.produced(suggestion("c1", "x = '𝔘'"));
    assert.equal(book.partial("c1", 6), 5); // "x = '" and half of 𝔘
    assert.equal(book.partial("c1", 7), 6);
  });

  test("partial: the approximation's measured prefix, with an astral character", () => {
    const book = new AcceptanceBook();
    const text = "label = '🚀 go'\n";
    book.produced(suggestion("c1", text));
    const measured = acceptedPrefixLength(text, "label = '🚀");
    assert.equal(measured, 11); // UTF-16
    assert.equal(book.partial("c1", measured!), 10); // Python: len("label = '🚀") == 10
  });

  test("partial for an unknown suggestion reports nothing", () => {
    assert.equal(new AcceptanceBook().partial("nope", 3), undefined);
  });

  test("the same id produced again keeps its history", () => {
    const book = new AcceptanceBook();
    book.produced(suggestion("c1"));
    book.markShown("c1");
    book.produced(suggestion("c1"));
    assert.equal(book.markShown("c1"), false);
  });

  test("memory is bounded: the oldest suggestions are forgotten", () => {
    const book = new AcceptanceBook(3);
    for (const id of ["a", "b", "c", "d"]) {
      book.produced(suggestion(id));
    }
    assert.equal(book.get("a"), undefined);
    assert.equal(book.get("d")?.id, "d");
  });
});

describe("completionIdOf", () => {
  const cases: Array<[string, Parameters<typeof completionIdOf>[0], string | undefined]> = [
    ["the accept command", { command: ACCEPT_COMMAND, arguments: ["abc"] }, "abc"],
    ["another command", { command: "other", arguments: ["abc"] }, undefined],
    ["no arguments", { command: ACCEPT_COMMAND }, undefined],
    ["a non-string id", { command: ACCEPT_COMMAND, arguments: [42] }, undefined],
    ["an empty id", { command: ACCEPT_COMMAND, arguments: [""] }, undefined],
    ["no command", undefined, undefined],
  ];
  for (const [name, command, expected] of cases) {
    test(name, () => assert.equal(completionIdOf(command), expected));
  }
});

describe("partialLengthOf", () => {
  const cases: Array<[unknown, number | undefined]> = [
    [5, 5],
    [{ kind: 2, acceptedLength: 12 }, 12],
    [{ kind: 2 }, undefined],
    [null, undefined],
    ["5", undefined],
  ];
  for (const [info, expected] of cases) {
    test(JSON.stringify(info), () => assert.equal(partialLengthOf(info), expected));
  }
});

describe("acceptedPrefixLength", () => {
  const cases: Array<[string, string, string, number | undefined]> = [
    ["one word", "return a + b", "return", 6],
    ["a word and its space", "return a + b", "return ", 7],
    ["a whole line of a block", "if x:\n    y()\n", "if x:\n", 6],
    ["CRLF document, LF suggestion", "if x:\n    y()\n", "if x:\r\n", 6],
    ["not the suggestion's text", "return a + b", "print", undefined],
    ["nothing inserted", "return a + b", "", undefined],
  ];
  for (const [name, insertText, typed, expected] of cases) {
    test(name, () => assert.equal(acceptedPrefixLength(insertText, typed), expected));
  }
});

describe("codePointLength", () => {
  const text = "a😀b"; // UTF-16: a, high, low, b
  const cases: Array<[number, number]> = [
    [0, 0],
    [1, 1],
    [2, 1], // inside the pair: the emoji was not accepted whole
    [3, 2],
    [4, 3],
    [9, 3],
    [-1, 0],
  ];
  for (const [units, expected] of cases) {
    test(`${units} units of ${JSON.stringify(text)}`, () => assert.equal(codePointLength(text, units), expected));
  }
  test("BMP text: the same number", () => assert.equal(codePointLength("héllo wörld", 7), 7));
});

describe("probablyShown", () => {
  const base = {
    cancelled: false,
    sameDocument: true,
    requestVersion: 3,
    currentVersion: 3,
    selectionEmpty: true,
    cursorAtRequest: true,
  };
  test("cursor still where it was asked for", () => assert.equal(probablyShown(base), true));
  const spoilers: Array<[string, Partial<typeof base>]> = [
    ["cancelled", { cancelled: true }],
    ["another editor", { sameDocument: false }],
    ["edited since", { currentVersion: 4 }],
    ["a selection", { selectionEmpty: false }],
    ["cursor moved", { cursorAtRequest: false }],
  ];
  for (const [name, change] of spoilers) {
    test(`not when ${name}`, () => assert.equal(probablyShown({ ...base, ...change }), false));
  }
});
