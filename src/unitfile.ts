// Reading systemd unit-file syntax back into the plan model.
//
// The inverse of the networkd renderer, used wherever the project must read what
// it (or someone else) wrote: --check, doctor, and the lab, which configures the
// userspace WireGuard from the generated .netdev. Follows systemd's rules for the
// subset networkd files use: "[Section]" headers, "Key=Value" lines, "#" and ";"
// comments, surrounding whitespace ignored. Values stay strings: the file carries
// no types.

import type { Entry, Section } from "./model.js";

export class UnitFileError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

export function parseUnitFile(text: string): Section[] {
  const sections: { name: string; comment: string[]; entries: Entry[] }[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      sections.push({ name: header[1]!, comment: [], entries: [] });
      return;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new UnitFileError(index + 1, `expected "Key=Value" or "[Section]", got "${line}"`);
    const current = sections.at(-1);
    if (!current) throw new UnitFileError(index + 1, "assignment outside of any section");
    current.entries.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() });
  });
  return sections;
}
