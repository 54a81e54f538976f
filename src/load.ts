// Reading a spec file: TOML or JSON by its extension, syntax errors with line and column.

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
    return TOML.parse(text);
  } catch (error) {
    // @iarna/toml's line/col fields are 0-based (its message text is 1-based).
    const { line, col, message } = error as { line?: number; col?: number; message: string };
    const where = line === undefined ? "" : `${line + 1}:${(col ?? 0) + 1}:`;
    throw new SpecSyntaxError(`${path}:${where} invalid TOML: ${message.split("\n")[0]}`);
  }
}

export async function loadSpec(path: string): Promise<LoadedSpec> {
  const shown = displayName(path);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new SpecSyntaxError(`${shown}: cannot read the spec: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const extension = extname(path).toLowerCase();
  if (extension !== ".toml" && extension !== ".json") {
    throw new SpecSyntaxError(`${shown}: unknown spec format "${extension}"; name the file *.toml or *.json`);
  }
  const document = extension === ".json" ? parseJson(shown, text) : parseToml(shown, text);
  return { name: displayName(basename(path)), path, document };
}
