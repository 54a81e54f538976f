// Reading a spec file: TOML or JSON by its extension, syntax errors with line and column.

import { isUtf8 } from "node:buffer";
import { readFile } from "node:fs/promises";
import { basename, extname } from "node:path";
import { parse, tokenize } from "@humanwhocodes/momoa";
import TOML from "@iarna/toml";
import { displayName, escapeInvisible, quoteText } from "./text.js";

export class SpecSyntaxError extends Error {}

export interface LoadedSpec {
  /** The spec file's name as the header comment shows it: escaped and quoted when it holds a line break or other invisible character. */
  readonly name: string;
  readonly path: string;
  readonly document: unknown;
}

/** 1-based line and column of a character offset. */
function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n") };
}

/**
 * A key set twice in one JSON object: JSON.parse keeps the last silently, TOML refuses it, and so
 * do we. Found from the token stream with a stack of its own (any depth; the document parsed).
 */
function duplicateJsonKey(path: string, text: string): SpecSyntaxError | undefined {
  const objects: (Map<string, { line: number; column: number }> | undefined)[] = [];
  const tokens = tokenize(text);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.type === "LBrace") objects.push(new Map());
    else if (token.type === "LBracket") objects.push(undefined);
    else if (token.type === "RBrace" || token.type === "RBracket") objects.pop();
    else if (token.type === "String" && tokens[i + 1]?.type === "Colon") {
      const keys = objects.at(-1)!;
      const key = JSON.parse(text.slice(token.loc.start.offset, token.loc.end.offset)) as string;
      const first = keys.get(key);
      const { line, column } = token.loc.start;
      if (first) return new SpecSyntaxError(`${path}:${line}:${column}: invalid JSON: duplicate key ${quoteText(key)} (first at ${first.line}:${first.column}); JSON specs set each key once`);
      keys.set(key, { line, column });
    }
  }
  return undefined;
}

function parseJson(path: string, text: string): unknown {
  try {
    const document: unknown = JSON.parse(text);
    const duplicate = duplicateJsonKey(path, text);
    if (duplicate) throw duplicate;
    return document;
  } catch (error) {
    if (error instanceof SpecSyntaxError) throw error;
    const message = (error as Error).message;
    const at = /position (\d+)/.exec(message);
    // V8 says where by offset, or only quotes the text around the bad token (raw, and long);
    // then @humanwhocodes/momoa's parser says where and what, unless the text is too deep for it.
    const place = at ? { ...position(text, Number(at[1])), why: message } : /end of JSON input/.test(message) ? { ...position(text, text.length), why: message } : tokenPlace(text);
    const why = (place?.why ?? message).replace(/ in JSON at position \d+.*$/s, "").replace(/, (\.\.\.)?".*" is not valid JSON$/s, "").replace(/ found\. \(\d+:\d+\)$/, "");
    const where = place === undefined ? "" : `${place.line}:${place.column}:`;
    throw new SpecSyntaxError(`${path}:${where} invalid JSON: ${escapeInvisible(why)}`);
  }
}

/** Where and why @humanwhocodes/momoa's parser stops; undefined when the text is too deep for it. */
function tokenPlace(text: string): { line: number; column: number; why: string } | undefined {
  try {
    parse(text);
  } catch (error) {
    const { line, column, message } = error as { line?: number; column?: number; message: string };
    if (line !== undefined && column !== undefined) return { line, column, why: message };
  }
  return undefined;
}

/** @iarna/toml's "Can't redefine existing key" with the key or table named, from the line it points at. */
function redefined(sourceLine: string): string {
  const table = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?/.exec(sourceLine);
  if (table) return `duplicate table [${table[1]}]; TOML sets each key once (merge the two tables)`;
  const key = /^\s*([^=]+?)\s*=/.exec(sourceLine);
  return `duplicate key ${quoteText(key ? key[1]!.replace(/^"(.*)"$/, "$1") : sourceLine.trim())}; TOML sets each key once (remove one of them)`;
}

function parseToml(path: string, text: string): unknown {
  try {
    // TOML ends lines with LF or CRLF; @iarna/toml takes the CR before a comment's LF for a
    // control character in the comment. Columns stay the same (the CR ends its line).
    return TOML.parse(text.replace(/\r\n/g, "\n"));
  } catch (error) {
    // @iarna/toml's line/col fields are 0-based (its message text is 1-based).
    const { line, col, message } = error as { line?: number; col?: number; message: string };
    const where = line === undefined ? "" : `${line + 1}:${(col ?? 0) + 1}:`;
    // The message's first line ends in its own copy of the place ("at row 3, col 5, pos 21:").
    let why = message.split("\n")[0]!.replace(/ at row \d+, col \d+, pos \d+:$/, "");
    if (/^Can't redefine existing key/.test(why) && line !== undefined) why = redefined(text.split(/\r?\n/)[line] ?? "");
    throw new SpecSyntaxError(`${path}:${where} invalid TOML: ${why}`);
  }
}

/** Whether the bytes are UTF-8, allowing a sequence cut off at the end. */
function isUtf8Start(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes, { stream: true });
    return true;
  } catch {
    return false;
  }
}

/**
 * The file's text, or where it stops being UTF-8: decoding would silently replace a bad byte
 * with U+FFFD, a value the spec's author never wrote.
 */
function decodeUtf8(shown: string, bytes: Buffer): string {
  if (isUtf8(bytes)) return new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  // The shortest prefix that is not UTF-8 (binary search: every longer one is not either).
  let [low, high] = [0, bytes.length];
  while (low < high) {
    const middle = (low + high) >> 1;
    if (isUtf8Start(bytes.subarray(0, middle + 1))) low = middle + 1;
    else high = middle;
  }
  const before = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes.subarray(0, low), { stream: true });
  const badByte = bytes[Buffer.byteLength(before)]!;
  const { line, column } = position(before, before.length);
  throw new SpecSyntaxError(`${shown}:${line}:${column}: not valid UTF-8 (byte 0x${badByte.toString(16).padStart(2, "0")}); save the file as UTF-8`);
}

export async function loadSpec(path: string): Promise<LoadedSpec> {
  const shown = displayName(path);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file"
      : code === "EISDIR" ? `it is a directory; name the spec file, e.g. ${displayName(path.replace(/\/+$/, ""))}/spec.toml`
      : code === "EACCES" ? "permission denied (run as a user who may read it, or with sudo)"
      : (code ?? (error as Error).message);
    throw new SpecSyntaxError(`${shown}: cannot read the spec: ${why}`);
  }
  const extension = extname(path).toLowerCase();
  if (extension !== ".toml" && extension !== ".json") {
    throw new SpecSyntaxError(`${shown}: unknown spec format "${extension}"; name the file *.toml or *.json`);
  }
  // A byte-order mark (Windows editors write one) is no part of the text: JSON's RFC lets
  // parsers ignore it, and TOML parsers commonly do.
  const text = decodeUtf8(shown, bytes).replace(/^\ufeff/, "");
  const document = extension === ".json" ? parseJson(shown, text) : parseToml(shown, text);
  return { name: displayName(basename(path)), path, document };
}
