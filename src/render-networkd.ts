// Render: the plan spelt as systemd unit files (.netdev, .network, networkd.conf drop-ins).

import type { Plan, Unit, Value } from "./model.js";
import { headerLines } from "./ownership.js";
import { renderTemplate } from "./templates.js";

/** Booleans as true/false: networkd accepts them, and NixOS writes them the same way. */
export function formatValue(value: Value): string {
  return String(value);
}

export function renderUnit(unit: Unit, header: readonly string[]): string {
  return renderTemplate("networkd/unit.njk", {
    header,
    comment: unit.comment,
    sections: unit.sections.map((s) => ({
      name: s.name,
      comment: s.comment,
      lines: s.entries.map((e) => `${e.key}=${formatValue(e.value)}`),
    })),
  });
}

/** Every unit of the plan, rendered, keyed by file name. */
export function renderNetworkd(plan: Plan, specName: string): { unit: Unit; content: string }[] {
  const header = headerLines(plan, specName);
  return plan.units.map((unit) => ({ unit, content: renderUnit(unit, header) }));
}
