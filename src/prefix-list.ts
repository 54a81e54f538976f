// Prefix list files: the format users keep country lists and feeds in.
//
// One CIDR or bare address per line (a bare address is a /32 or /128), IPv4 and
// IPv6 mixed, blank lines ignored, "#" starts a comment (whole line or after a
// prefix), surrounding whitespace ignored; lines end in LF, CRLF or CR. A name ending
// in ".gz" is gunzipped first. Lists run to a million lines, so lines go straight
// into an AddressSetBuilder without a per-prefix object; every bad line is
// counted and the first MAX_REPORTED_PROBLEMS are kept with their line numbers,
// so one bad list cannot flood the terminal.

import { readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { AddressSet, AddressSetBuilder } from "./prefix.js";
import { quoteText } from "./text.js";

export const MAX_REPORTED_PROBLEMS = 20;

export interface ListProblem {
  /** 1-based line number in the (decompressed) file. */
  readonly line: number;
  /** The line's content without comment and surrounding whitespace. */
  readonly text: string;
  readonly message: string;
  readonly hint?: string;
}

export interface PrefixList {
  readonly set: AddressSet;
  /** Lines that held a prefix (before any merging). */
  readonly prefixCount: number;
  /** The first MAX_REPORTED_PROBLEMS bad lines. */
  readonly problems: readonly ListProblem[];
  /** All bad lines, reported or not. */
  readonly problemCount: number;
}

const isBlank = (c: number) => c === 32 || c === 9 || c === 13; // space, tab, CR

export function parsePrefixList(listText: string): PrefixList {
  // Old Mac line ends (CR alone) end a line too, as in systemd and most tools; a search for
  // CR is cheap next to parsing, and only such files pay for the copy.
  const text = listText.includes("\r") ? listText.replace(/\r\n?/g, "\n") : listText;
  const builder = new AddressSetBuilder();
  const problems: ListProblem[] = [];
  let problemCount = 0;
  let prefixCount = 0;
  // Lines are scanned in place (no string per line); a Windows editor's byte-order mark is skipped.
  let lineStart = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  // The next "#" at or after lineStart, searched again only once passed (a search per line would be quadratic).
  let nextHash = -1;
  for (let lineNumber = 1; lineStart <= text.length; lineNumber++) {
    let lineEnd = text.indexOf("\n", lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    let start = lineStart;
    if (nextHash !== text.length && nextHash < lineStart) {
      nextHash = text.indexOf("#", lineStart);
      if (nextHash === -1) nextHash = text.length;
    }
    let end = nextHash < lineEnd ? nextHash : lineEnd;
    lineStart = lineEnd + 1;
    while (start < end && isBlank(text.charCodeAt(start))) start++;
    while (end > start && isBlank(text.charCodeAt(end - 1))) end--;
    if (start === end) continue;
    const problem = builder.addText(text, true, start, end);
    if (problem === undefined) {
      prefixCount++;
    } else if (problemCount++ < MAX_REPORTED_PROBLEMS) {
      problems.push({ line: lineNumber, text: text.slice(start, end), ...problem });
    }
  }
  return { set: builder.build(), prefixCount, problems, problemCount };
}

/** Far more than the largest real list (a full routing table is some 30 MB of text); also the cap once gunzipped. */
const MAX_LIST_BYTES = 512 * 1024 * 1024;

/**
 * Reads a list file; file system and gzip errors are thrown as they come (with the path
 * in their message). Only regular files are read, and at most MAX_LIST_BYTES of text:
 * a FIFO would hang us, /dev/zero never end.
 */
export function readPrefixList(path: string): PrefixList {
  const stats = statSync(path);
  if (!stats.isFile()) throw new Error(`${stats.isFIFO() ? "a FIFO" : stats.isCharacterDevice() ? "a character device" : stats.isDirectory() ? "a directory" : "a special file"}, not a regular file`);
  if (stats.size > MAX_LIST_BYTES) throw new Error(`larger than ${MAX_LIST_BYTES >> 20} MiB`);
  const bytes = readFileSync(path);
  let text: Buffer;
  try {
    text = path.endsWith(".gz") ? gunzipSync(bytes, { maxOutputLength: MAX_LIST_BYTES }) : bytes;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw new Error(`larger than ${MAX_LIST_BYTES >> 20} MiB once gunzipped`);
    throw error;
  }
  return parsePrefixList(text.toString("utf8"));
}

/**
 * The list's problems as error lines, each naming the file and line:
 *   countries.txt:12: "256.0.0.0/8" IPv4 part 256 is out of range (0-255)
 */
export function describeProblems(fileName: string, list: PrefixList): string[] {
  const lines = list.problems.map(
    (p) => `${fileName}:${p.line}: ${quoteText(p.text)} ${p.message}${p.hint === undefined ? "" : `; ${p.hint}`}`,
  );
  const unreported = list.problemCount - list.problems.length;
  if (unreported > 0) lines.push(`${fileName}: ${unreported} more bad line${unreported === 1 ? "" : "s"} not shown`);
  return lines;
}

/**
 * The union of the lists a spec names (paths relative to the spec's directory),
 * or the problems, each under its spec path (e.g. "split.exclude_files[0]") and
 * naming file and line, so that nothing is written when any line is bad.
 */
export function readListFiles(
  paths: readonly string[],
  baseDir: string,
  specPath: string,
): { set: AddressSet; problems: { path: string; message: string }[] } {
  let set = AddressSet.EMPTY;
  const problems: { path: string; message: string }[] = [];
  paths.forEach((path, index) => {
    const where = `${specPath}[${index}]`;
    let list: PrefixList;
    try {
      list = readPrefixList(isAbsolute(path) ? path : join(baseDir, path));
    } catch (error) {
      const { code, message } = error as NodeJS.ErrnoException;
      const why =
        code === "ENOENT" ? "no such file"
        : code === "Z_BUF_ERROR" ? "the gzip data ends early (an interrupted download?)"
        : code === "Z_DATA_ERROR" && /header/.test(message) ? "not gzip data (the name ends in .gz)"
        : code?.startsWith("Z_") ? `damaged gzip data (zlib: ${message})`
        : (code ?? message);
      problems.push({ path: where, message: `cannot read ${JSON.stringify(path)}: ${why}` });
      return;
    }
    if (list.problemCount > 0) problems.push(...describeProblems(path, list).map((message) => ({ path: where, message })));
    else set = set.union(list.set);
  });
  return { set, problems };
}
