// Render: the plan spelt as systemd unit files (.netdev, .network, networkd.conf drop-ins).

import { isSeries, type Entry, type Plan, type Section, type SectionSeries, type Unit, type Value } from "./model.js";
import { contentHash, headerLines } from "./ownership.js";
import { renderTemplate } from "./templates.js";

/** Booleans as true/false: networkd accepts them, and NixOS writes them the same way. */
export function formatValue(value: Value): string {
  return String(value);
}

const entryLines = (entries: readonly Entry[]) => entries.map((e) => `${e.key}=${formatValue(e.value)}\n`).join("");
const commentLines = (comment: readonly string[]) => comment.map((line) => `# ${line}\n`).join("");

/**
 * One section as unit-file text: a blank line, its comment lines, "[Name]", "Key=Value" lines.
 * Spelt here rather than in the template: a nunjucks loop sets seven loop variables per
 * iteration (about 6 µs), which made a million-route prefix list take seconds to render.
 */
function renderSection(section: Section): string {
  return `\n${commentLines(section.comment)}[${section.name}]\n${entryLines(section.entries)}`;
}

/** A series as the sections it stands for: the text around the varying value is the same for all but the first. */
function renderSeries(series: SectionSeries): string {
  const head = `[${series.name}]\n${entryLines(series.before)}${series.key}=`;
  const [first, rest, tail] = [`\n${commentLines(series.comment)}${head}`, `\n${head}`, `\n${entryLines(series.after)}`];
  // Joined in chunks as the values are made, so that only a chunk's values are alive at any time (the
  // collector copies what is alive, and long strings it never copies), and no string is made per section.
  const chunks: string[] = [];
  let parts: string[] = [];
  series.values.forEach((value, i) => {
    parts.push(i === 0 ? first : rest, value, tail);
    if (parts.length === 3 * SERIES_CHUNK) {
      chunks.push(parts.join(""));
      parts = [];
    }
  });
  chunks.push(parts.join(""));
  return chunks.join("");
}

/** Sections per chunk: a chunk (some 200 kB) is past the size the collector moves. */
const SERIES_CHUNK = 4096;

/** A unit as file text under header lines made (by header) from the hash of its own comment and sections. */
export function renderUnit(unit: Unit, header: (sha256: string) => readonly string[]): string {
  const sections = unit.sections.map((s) => (isSeries(s) ? renderSeries(s) : renderSection(s))).join("");
  const sha256 = contentHash(`${JSON.stringify(unit.comment)}\n${sections}`);
  return renderTemplate("networkd/unit.njk", { header: header(sha256), comment: unit.comment, sections });
}

/** Every unit of the plan, rendered, keyed by file name. */
export function renderNetworkd(plan: Plan, specName: string): { unit: Unit; content: string }[] {
  return plan.units.map((unit) => ({ unit, content: renderUnit(unit, (sha256) => headerLines(plan.identity, specName, sha256)) }));
}
