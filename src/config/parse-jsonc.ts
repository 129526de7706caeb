// SPDX-License-Identifier: Apache-2.0
/**
 * JSONC parsing (comments, trailing commas) that keeps the syntax tree, so every problem can be
 * reported as `file:line:column` of the offending key or value.
 */
import {
  createScanner,
  findNodeAtLocation,
  getNodePath,
  getNodeValue,
  type Node,
  type ParseError,
  parseTree,
  printParseErrorCode,
} from "jsonc-parser";
import type { ConfigProblem } from "../shared/errors.js";
import { plainJson } from "./check-schema.js";
import { formatPath, type PathProblem } from "./path-problem.js";

/** A parsed document with what is needed to locate problems in it. */
export interface JsoncDocument {
  readonly file: string;
  readonly text: string;
  readonly root: Node | undefined;
  /** The parsed value with plain prototypes; `undefined` when the text holds no value. */
  readonly value: unknown;
  /** Offsets where each line starts. */
  readonly lineStarts: readonly number[];
}

/** The result of {@link parseJsonc}. */
export interface ParsedJsonc {
  doc: JsoncDocument;
  /** Syntax errors, located; when non-empty the value must not be trusted. */
  syntaxProblems: ConfigProblem[];
  /** Keys given twice in one object (the last one wins); not fatal, but reported. */
  duplicateKeys: PathProblem[];
}

const MESSAGES: Readonly<Record<string, string>> = {
  InvalidSymbol: "unexpected",
  InvalidNumberFormat: "invalid number",
  PropertyNameExpected: "expected a property name",
  ValueExpected: "expected a value",
  ColonExpected: "expected ':'",
  CommaExpected: "expected ','",
  CloseBraceExpected: "expected '}'",
  CloseBracketExpected: "expected ']'",
  EndOfFileExpected: "expected end of file",
  InvalidCommentToken: "invalid comment",
  UnexpectedEndOfComment: "unterminated comment",
  UnexpectedEndOfString: "unterminated string",
  UnexpectedEndOfNumber: "unterminated number",
  InvalidUnicode: "invalid unicode escape",
  InvalidEscapeCharacter: "invalid escape character",
  InvalidCharacter: "invalid character in string",
};

/**
 * Deepest nesting of objects and arrays accepted. Real configs nest about 8 levels; the parser and
 * the checks recurse, so a hostile file nested thousands deep would overflow the stack.
 */
export const MAX_NESTING_DEPTH = 64;

/** jsonc-parser's `SyntaxKind` values (a const enum, which isolated modules cannot import). */
const TOKEN = { openBrace: 1, closeBrace: 2, openBracket: 3, closeBracket: 4, eof: 17 } as const;

/** Offset of the first bracket nested deeper than {@link MAX_NESTING_DEPTH}, if any. */
function tooDeepAt(text: string): number | undefined {
  // Nesting cannot exceed the number of opening brackets: skip the scan for ordinary files.
  let opening = 0;
  for (let i = 0; i < text.length && opening <= MAX_NESTING_DEPTH; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) opening++;
  }
  if (opening <= MAX_NESTING_DEPTH) return undefined;
  // The scanner is iterative and skips strings and comments, unlike the recursive parser.
  const scanner = createScanner(text, true);
  let depth = 0;
  for (let t: number = scanner.scan(); t !== TOKEN.eof; t = scanner.scan()) {
    if (t === TOKEN.openBrace || t === TOKEN.openBracket) {
      if (++depth > MAX_NESTING_DEPTH) return scanner.getTokenOffset();
    } else if (t === TOKEN.closeBrace || t === TOKEN.closeBracket) {
      depth = Math.max(0, depth - 1);
    }
  }
  return undefined;
}

/** Parses JSONC text; never throws. */
export function parseJsonc(text: string, file: string): ParsedJsonc {
  const tooDeep = tooDeepAt(text);
  if (tooDeep !== undefined) {
    const doc = documentOf(file, text, undefined);
    return {
      doc,
      syntaxProblems: [
        {
          path: "",
          message: `syntax error: nested deeper than ${MAX_NESTING_DEPTH} levels`,
          file,
          ...positionAt(doc, tooDeep),
        },
      ],
      duplicateKeys: [],
    };
  }
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  const doc = documentOf(file, text, root);
  if (
    root === undefined &&
    errors.length > 0 &&
    errors.every((e) => printParseErrorCode(e.error) === "ValueExpected")
  ) {
    return {
      doc,
      syntaxProblems: [
        {
          path: "",
          message: "the file is empty: expected a JSON object",
          file,
          line: 1,
          column: 1,
        },
      ],
      duplicateKeys: [],
    };
  }
  const syntaxProblems = errors.map((e): ConfigProblem => {
    const code = printParseErrorCode(e.error);
    let message = MESSAGES[code] ?? code;
    if (code === "InvalidSymbol") {
      message +=
        e.length > 0
          ? ` ${JSON.stringify(text.slice(e.offset, e.offset + Math.min(e.length, 20)))}`
          : " input";
    }
    return { path: "", message: `syntax error: ${message}`, file, ...positionAt(doc, e.offset) };
  });
  return { doc, syntaxProblems, duplicateKeys: root ? findDuplicateKeys(root) : [] };
}

function documentOf(file: string, text: string, root: Node | undefined): JsoncDocument {
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) lineStarts.push(i + 1);
  return {
    file,
    text,
    root,
    value: root === undefined ? undefined : plainJson(getNodeValue(root)),
    lineStarts,
  };
}

function findDuplicateKeys(root: Node): PathProblem[] {
  const out: PathProblem[] = [];
  const walk = (node: Node): void => {
    if (node.type === "object") {
      const seen = new Set<string>();
      for (const prop of node.children ?? []) {
        const keyNode = prop.children?.[0];
        if (keyNode === undefined) continue;
        const key = String(keyNode.value);
        if (seen.has(key)) {
          out.push({
            path: [...getNodePath(keyNode.parent!.children?.[1] ?? keyNode)],
            at: "key",
            offset: keyNode.offset,
            message: `duplicate key "${key}" (the last one wins)`,
          });
        }
        seen.add(key);
      }
    }
    for (const child of node.children ?? []) walk(child);
  };
  walk(root);
  return out;
}

/** 1-based line and column of an offset. */
export function positionAt(doc: JsoncDocument, offset: number): { line: number; column: number } {
  let lo = 0;
  let hi = doc.lineStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (doc.lineStarts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - doc.lineStarts[lo]! + 1 };
}

/** Offset of the value (or key) at `path`, or of its nearest existing ancestor when it is absent. */
export function offsetOf(doc: JsoncDocument, problem: PathProblem): number {
  if (problem.offset !== undefined) return problem.offset;
  if (doc.root === undefined) return 0;
  for (let n = problem.path.length; n >= 0; n--) {
    const node = findNodeAtLocation(doc.root, [...problem.path.slice(0, n)]);
    if (node === undefined) continue;
    const prop = node.parent;
    if (n === problem.path.length && problem.at === "key" && prop?.type === "property") {
      return prop.children?.[0]?.offset ?? node.offset;
    }
    return node.offset;
  }
  return doc.root.offset;
}

/**
 * Turns path problems into located ConfigProblems, sorted by position. `pathPrefix` is prepended
 * to the shown path (the groups file shows `groups.<tenant>.<group>…`).
 */
export function locateProblems(
  doc: JsoncDocument,
  problems: readonly PathProblem[],
  pathPrefix = "",
): ConfigProblem[] {
  return problems
    .map((p) => ({
      path: formatPath(p.path, pathPrefix),
      message: p.message,
      file: doc.file,
      ...positionAt(doc, offsetOf(doc, p)),
    }))
    .sort((a, b) => a.line - b.line || a.column - b.column);
}
