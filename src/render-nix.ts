// Rendering a plan as one NixOS module.
//
// The module makes NixOS write the same systemd-networkd configuration that the
// networkd renderer writes directly: every section of the plan lands in the
// NixOS option that renders back to that section (option layout of NixOS 24.11
// and later, where list entries such as routes and peers are flat attribute
// sets). All decisions are made here, in TypeScript; the template only lays out
// the view model below.
//
// The module is a plain `{ ... }: { ... }` function that uses nothing from
// `lib` or `pkgs`, so a bare Nix evaluator can evaluate it (the tests do). Key
// files appear only as path strings, never as Nix paths, so nothing is copied
// into the world-readable Nix store.

import { sectionsOf, type Entry, type Plan, type Section, type Unit, type UnitKind, type Value } from "./model.js";
import { WAIT_ONLINE } from "./plan.js";
import { renderTemplate } from "./templates.js";

/** A section the plan used but NixOS offers no option for (or the renderer does not map yet). */
export class NixMappingError extends Error {}

/** How one kind of section maps to options of its unit's NixOS attribute set. */
type Placement =
  /** All entries of every such section go into one attribute set, e.g. `netdevConfig`. */
  | { readonly shape: "attrs"; readonly option: string; readonly lifted?: Readonly<Record<string, string>> }
  /** Each such section becomes one attribute set in a list, e.g. one entry of `routes`. */
  | { readonly shape: "sets"; readonly option: string }
  /** All entries as "Key=Value" lines of one string, which NixOS appends to the section it writes itself. */
  | { readonly shape: "lines"; readonly option: string };

interface UnitMapping {
  /** The Nix attribute path of the unit, given its name (the file name without extension). */
  readonly path: (name: string, unit: Unit) => string[];
  readonly sections: Readonly<Record<string, Placement>>;
  /** A lifted value as NixOS needs it, where it differs from the file systemd reads. */
  readonly liftedValue?: (value: Value) => Value;
}

// NixOS renders `address` as `Address=` lines in [Network]; other [Network] keys go
// through `networkConfig`. NixOS renders every [RoutingPolicyRule] before every
// [Route] whatever the order here; networkd does not care about section order.
const UNIT_MAPPINGS: Readonly<Record<UnitKind, UnitMapping>> = {
  netdev: {
    path: (name) => ["systemd", "network", "netdevs", name],
    sections: {
      NetDev: { shape: "attrs", option: "netdevConfig" },
      WireGuard: { shape: "attrs", option: "wireguardConfig" },
      WireGuardPeer: { shape: "sets", option: "wireguardPeers" },
    },
  },
  network: {
    path: (name) => ["systemd", "network", "networks", name],
    sections: {
      Match: { shape: "attrs", option: "matchConfig" },
      Link: { shape: "attrs", option: "linkConfig" },
      Network: { shape: "attrs", option: "networkConfig", lifted: { Address: "address" } },
      Route: { shape: "sets", option: "routes" },
      RoutingPolicyRule: { shape: "sets", option: "routingPolicyRules" },
    },
  },
  // NixOS writes /etc/systemd/networkd.conf itself from these settings.
  "networkd-conf": {
    path: () => ["systemd", "network", "config"],
    sections: {
      Network: { shape: "attrs", option: "networkConfig" },
    },
  },
  // NixOS writes resolved.conf's [Resolve] itself and appends extraConfig to it.
  "resolved-conf": {
    path: () => ["services", "resolved"],
    sections: {
      Resolve: { shape: "lines", option: "extraConfig" },
    },
  },
  // The drop-in's settings merge into the service's own: `wants`, `after` and a list-valued
  // ExecStartPre are concatenated with other modules' definitions, never in conflict with them.
  // NixOS has no /usr: systemd's programs are in the system profile's systemd.
  "service-drop-in": {
    path: (_name, unit) => ["systemd", "services", unit.service!.replace(/\.service$/, "")],
    sections: {
      Unit: { shape: "attrs", option: "unitConfig", lifted: { Wants: "wants", After: "after" } },
      Service: { shape: "attrs", option: "serviceConfig", lifted: { ExecStartPre: "serviceConfig.ExecStartPre" } },
    },
    liftedValue: (value) => (typeof value === "string" ? value.replace(WAIT_ONLINE, "/run/current-system/systemd/lib/systemd/systemd-networkd-wait-online") : value),
  },
};

// ---------------------------------------------------------------------------
// Nix syntax

const NIX_KEYWORDS = new Set(["assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"]);

/**
 * A Nix double-quoted string literal holding exactly `text`.
 * Backslash and quote are escaped, and "${" so it cannot start an interpolation;
 * line breaks and tabs use escapes so the literal stays on one line.
 */
export function nixString(text: string): string {
  if (text.includes("\0")) throw new NixMappingError(`a Nix string cannot hold a NUL character: ${JSON.stringify(text)}`);
  const escaped = text
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\$\{/g, "\\${")
    .replace(/\n/g, "\\n")
    .replace(/\r/g, "\\r")
    .replace(/\t/g, "\\t");
  return `"${escaped}"`;
}

/** An attribute name: bare when Nix allows it, otherwise a quoted string. */
export function nixAttrName(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_'-]*$/.test(name) && !NIX_KEYWORDS.has(name) ? name : nixString(name);
}

function nixValue(value: Value): string {
  switch (typeof value) {
    case "string":
      return nixString(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isSafeInteger(value)) {
        throw new NixMappingError(`${value} is not an integer; networkd values rendered for Nix must be integers or strings`);
      }
      // A negative literal inside a list would parse as subtraction.
      return value < 0 ? `(${value})` : String(value);
  }
}

/**
 * Comment text as Nix comment lines ("# text"). A line break inside the text starts a
 * new comment line: Nix ends a "#" comment at CR or LF, so text could not leave the comment.
 */
function commentLines(lines: readonly string[]): string[] {
  return lines.flatMap((line) => line.split(/\r\n|\r|\n/)).map((line) => (line === "" ? "#" : `# ${line}`));
}

// ---------------------------------------------------------------------------
// View model: what the template lays out

interface NixAttr {
  /** Attribute name, already in Nix syntax. */
  readonly name: string;
  /** Value, already in Nix syntax: a literal or an inline list of literals. */
  readonly value: string;
}

interface NixAttrSet {
  /** Comment lines, already in Nix syntax ("# ..."), as in every view below. */
  readonly comment: readonly string[];
  readonly attrs: readonly NixAttr[];
  /** The whole set written on one line. */
  readonly oneLine: string;
}

type NixField =
  | { readonly shape: "attrs"; readonly name: string; readonly comment: readonly string[]; readonly attrs: readonly NixAttr[] }
  | { readonly shape: "list"; readonly name: string; readonly comment: readonly string[]; readonly values: readonly string[] }
  /** VALUE: one Nix string literal. */
  | { readonly shape: "lines"; readonly name: string; readonly comment: readonly string[]; readonly value: string }
  | {
      readonly shape: "sets";
      readonly name: string;
      readonly comment: readonly string[];
      readonly sets: readonly NixAttrSet[];
      /** Every set on one line: when all fit, so long lists (throw routes) stay scannable and alike. */
      readonly inline: boolean;
    };

interface NixUnitView {
  /** Attribute path of the unit, already in Nix syntax, e.g. systemd.network.networks."50-wg0". */
  readonly path: string;
  readonly comment: readonly string[];
  readonly fields: readonly NixField[];
}

interface NixModuleView {
  readonly header: readonly string[];
  readonly units: readonly NixUnitView[];
}

/** Entries as attributes; a key given more than once becomes one list, in the plan's order. */
function attrsOf(entries: readonly Entry[]): NixAttr[] {
  const byKey = new Map<string, Value[]>();
  for (const { key, value } of entries) byKey.set(key, [...(byKey.get(key) ?? []), value]);
  return [...byKey].map(([key, values]) => ({
    name: nixAttrName(key),
    value: values.length === 1 ? nixValue(values[0]!) : `[ ${values.map(nixValue).join(" ")} ]`,
  }));
}

/** A field under construction: sections are collected first, attributes grouped at the end. */
type FieldDraft =
  | { shape: "attrs"; name: string; comment: string[]; entries: Entry[] }
  | { shape: "list"; name: string; comment: string[]; values: Value[] }
  | { shape: "lines"; name: string; comment: string[]; lines: string[] }
  | { shape: "sets"; name: string; comment: string[]; sets: NixAttrSet[] };

// The entries of a list are written one per line when every one fits this width at its indentation.
const INLINE_SET_WIDTH = 120;
const LIST_ENTRY_INDENT = 6;

function attrSet(comment: string[], entries: readonly Entry[]): NixAttrSet {
  const attrs = attrsOf(entries);
  return { comment, attrs, oneLine: `{ ${attrs.map((a) => `${a.name} = ${a.value}; `).join("")}}` };
}

function unitView(unit: Unit): NixUnitView {
  const mapping = UNIT_MAPPINGS[unit.kind];
  const name = unit.fileName.replace(/\.[^.]*$/, "");
  const fields = new Map<string, FieldDraft>();
  // Creates the field on first use, so fields appear in the order the plan first needs them.
  const field = <S extends FieldDraft["shape"]>(shape: S, option: string, make: () => FieldDraft): Extract<FieldDraft, { shape: S }> => {
    const existing = fields.get(option) ?? make();
    fields.set(option, existing);
    if (existing.shape !== shape) throw new Error(`option ${option} used both as ${existing.shape} and ${shape}`);
    return existing as Extract<FieldDraft, { shape: S }>;
  };

  for (const section of sectionsOf(unit)) {
    const placement = mapping.sections[section.name];
    if (!placement) throw unmapped(unit, section);
    const comment = commentLines(section.comment);
    if (placement.shape === "sets") {
      field("sets", placement.option, () => ({ shape: "sets", name: placement.option, comment: [], sets: [] })).sets.push(attrSet(comment, section.entries));
      continue;
    }
    if (placement.shape === "lines") {
      const text = field("lines", placement.option, () => ({ shape: "lines", name: placement.option, comment: [], lines: [] }));
      text.comment.push(...comment);
      text.lines.push(...section.entries.map((e) => `${e.key}=${String(e.value)}`));
      continue;
    }
    const lifted = placement.lifted ?? {};
    // The section's comment goes above the first field it contributes to.
    let pendingComment: string[] = comment;
    const takeComment = (): string[] => {
      const taken = pendingComment;
      pendingComment = [];
      return taken;
    };
    for (const [key, option] of Object.entries(lifted)) {
      const values = section.entries.filter((e) => e.key === key).map((e) => mapping.liftedValue?.(e.value) ?? e.value);
      if (values.length === 0) continue;
      const list = field("list", option, () => ({ shape: "list", name: option, comment: [], values: [] }));
      list.comment.push(...takeComment());
      list.values.push(...values);
    }
    const rest = section.entries.filter((e) => !(e.key in lifted));
    if (rest.length > 0) {
      const attrs = field("attrs", placement.option, () => ({ shape: "attrs", name: placement.option, comment: [], entries: [] }));
      attrs.comment.push(...takeComment());
      attrs.entries.push(...rest);
    }
  }

  return {
    path: mapping.path(name, unit).map(nixAttrName).join("."),
    comment: commentLines(unit.comment),
    fields: [...fields.values()].map((draft): NixField => {
      switch (draft.shape) {
        case "attrs":
          return { shape: "attrs", name: nixAttrName(draft.name), comment: draft.comment, attrs: attrsOf(draft.entries) };
        case "list":
          return { shape: "list", name: draft.name.split(".").map(nixAttrName).join("."), comment: draft.comment, values: draft.values.map(nixValue) };
        case "lines":
          return { shape: "lines", name: nixAttrName(draft.name), comment: draft.comment, value: nixString(draft.lines.map((line) => `${line}\n`).join("")) };
        case "sets":
          return {
            shape: "sets",
            name: nixAttrName(draft.name),
            comment: draft.comment,
            sets: draft.sets,
            inline: draft.sets.every((set) => LIST_ENTRY_INDENT + set.oneLine.length <= INLINE_SET_WIDTH),
          };
      }
    }),
  };
}

function unmapped(unit: Unit, section: Section): NixMappingError {
  const known = Object.keys(UNIT_MAPPINGS[unit.kind].sections).map((s) => `[${s}]`);
  return new NixMappingError(
    `${unit.fileName}: section [${section.name}] has no NixOS mapping; a ${unit.kind} unit maps ${known.join(", ")} (extend UNIT_MAPPINGS in src/render-nix.ts)`,
  );
}

function nixModuleView(plan: Plan, header: readonly string[]): NixModuleView {
  const units = plan.units.map(unitView);
  const seen = new Set<string>();
  for (const unit of units) {
    // Two units on one attribute path would be a duplicate attribute, which Nix rejects.
    if (seen.has(unit.path)) throw new NixMappingError(`two units of the plan map to the same NixOS option ${unit.path}`);
    seen.add(unit.path);
  }
  return { header: commentLines(header), units };
}

// ---------------------------------------------------------------------------

/** The NixOS module for a plan, as the text of one `.nix` file. `header` lines are written as comments on top. */
export function renderNix(plan: Plan, header: readonly string[]): string {
  return renderTemplate("nix/module.nix.njk", nixModuleView(plan, header));
}
