// Reading systemd unit-file syntax back into the plan model.
//
// The inverse of the networkd renderer, used wherever the project must read what
// it (or someone else) wrote: --check, doctor, the lab (which configures the
// userspace WireGuard from the generated .netdev) and the fault tests (which
// check that no value of ours could start a line of its own). So it reads
// exactly as systemd's config parser does (test/unitfile.test.ts compares the
// two): lines end at LF, CRLF, CR or NUL; a leading byte-order mark is skipped;
// lines starting with "#" or ";" are comments, also inside a continuation; a
// line ending in an odd number of backslashes continues on the next one (the
// last backslash becomes a space); "[Section]" headers and "Key=Value" lines,
// with space, tab, CR and LF stripped around key and value (and nothing else).
// Values stay strings: the file carries no types.

import type { Entry, Section } from "./model.js";

export class UnitFileError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

/** systemd's WHITESPACE: the only characters it strips around keys and values. */
const stripped = (text: string) => text.replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, "");

/** Whether the text ends in an odd number of backslashes (systemd then continues the line). */
export function continuesLine(text: string): boolean {
  let count = 0;
  while (count < text.length && text[text.length - 1 - count] === "\\") count++;
  return count % 2 === 1;
}

export function parseUnitFile(text: string): Section[] {
  const sections: { name: string; comment: string[]; entries: Entry[] }[] = [];
  const lines = (text.startsWith("\ufeff") ? text.slice(1) : text).split(/\r\n|[\r\n\0]/);
  let continued: string | undefined;
  lines.forEach((raw, index) => {
    if (/^[ \t\n\r]*[#;]/.test(raw)) return;
    const joined = continued === undefined ? raw : continued + raw;
    if (continuesLine(joined)) {
      continued = `${joined.slice(0, -1)} `;
      return;
    }
    continued = undefined;
    const line = stripped(joined);
    if (line === "") return;
    if (line.startsWith("[")) {
      const header = /^\[([^\]]+)\]$/.exec(line);
      if (!header) throw new UnitFileError(index + 1, `invalid section header "${line}"`);
      sections.push({ name: header[1]!, comment: [], entries: [] });
      return;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new UnitFileError(index + 1, `expected "Key=Value" or "[Section]", got "${line}"`);
    const current = sections.at(-1);
    if (!current) throw new UnitFileError(index + 1, "assignment outside of any section");
    current.entries.push({ key: stripped(line.slice(0, eq)), value: stripped(line.slice(eq + 1)) });
  });
  return sections;
}
