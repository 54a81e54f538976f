// Reading a spec file: TOML or JSON by its extension, syntax errors with line and column.

import { isUtf8 } from "node:buffer";
import { readFile } from "node:fs/promises";
import { basename, extname } from "node:path";
import TOML from "@iarna/toml";
import { displayName } from "./text.js";

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

function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const at = /position (\d+)/.exec(message);
    const offset = at ? Number(at[1]) : /end of JSON input/.test(message) ? text.length : undefined;
    const where = offset === undefined ? "" : `${position(text, offset).line}:${position(text, offset).column}:`;
    throw new SpecSyntaxError(`${path}:${where} invalid JSON: ${message.replace(/ in JSON at position \d+.*$/, "")}`);
  }
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
    throw new SpecSyntaxError(`${path}:${where} invalid TOML: ${message.split("\n")[0]!.replace(/ at row \d+, col \d+, pos \d+:$/, "")}`);
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
    throw new SpecSyntaxError(`${shown}: cannot read the spec: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
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
