// Render: the plan spelt as systemd unit files (.netdev, .network, networkd.conf drop-ins).

import type { Plan, Section, Unit, Value } from "./model.js";
import { headerLines } from "./ownership.js";
import { renderTemplate } from "./templates.js";

/** Booleans as true/false: networkd accepts them, and NixOS writes them the same way. */
export function formatValue(value: Value): string {
  return String(value);
}

/**
 * One section as unit-file text: a blank line, its comment lines, "[Name]", "Key=Value" lines.
 * Spelt here rather than in the template: a nunjucks loop sets seven loop variables per
 * iteration (about 6 µs), which made a million-route prefix list take seconds to render.
 */
function renderSection(section: Section): string {
  // join makes one flat string; `+=` would leave a tree of concatenations per section, all alive
  // until the unit is joined, and the garbage collector would copy every node of it.
  const parts = ["\n"];
  for (const line of section.comment) parts.push("# ", line, "\n");
  parts.push("[", section.name, "]\n");
  for (const e of section.entries) parts.push(e.key, "=", formatValue(e.value), "\n");
  return parts.join("");
}

export function renderUnit(unit: Unit, header: readonly string[]): string {
  return renderTemplate("networkd/unit.njk", { header, comment: unit.comment, sections: unit.sections.map(renderSection).join("") });
}

/** Every unit of the plan, rendered, keyed by file name. */
export function renderNetworkd(plan: Plan, specName: string): { unit: Unit; content: string }[] {
  const header = headerLines(plan, specName);
  return plan.units.map((unit) => ({ unit, content: renderUnit(unit, header) }));
}
