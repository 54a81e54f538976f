// The plan: one format-neutral model of what gen-networkd emits.
//
// A plan is a list of units (one per emitted systemd file); a unit is a list of
// sections; a section is an ordered list of key/value entries. Every output
// format (networkd files, the NixOS module) renders this same model, so the
// formats cannot drift apart: they differ only in syntax.

import type { AddressSet } from "./prefix.js";

/** A value as networkd reads it; numbers stay numbers so Nix can keep them integers. */
export type Value = string | number | boolean;

export interface Entry {
  readonly key: string;
  readonly value: Value;
}

export interface Section {
  /** The section name without brackets, e.g. "Route". */
  readonly name: string;
  /** Comment lines shown above the section (without "# "), for reviewers. */
  readonly comment: readonly string[];
  readonly entries: readonly Entry[];
}

/** Texts made on demand, in order, each time it is walked: a million prefixes need not all exist as strings at once. */
export interface TextSequence {
  forEach(visit: (text: string, index: number) => void): void;
}

/**
 * Sections alike but for one key's value, e.g. a throw route per excluded prefix.
 * It means exactly one section per value (sectionsOf spells them out), the
 * comment above the first, but is one object: prefix lists make hundreds of
 * thousands of such sections, and renderers write them in one loop.
 */
export interface SectionSeries {
  readonly name: string;
  readonly comment: readonly string[];
  /** Each section's entries are `before`, then `key` set to one of `values`, then `after`. */
  readonly before: readonly Entry[];
  readonly key: string;
  readonly values: TextSequence;
  readonly after: readonly Entry[];
}

/** Which directory a unit belongs in; each kind has its own output directory. */
export type UnitKind = "netdev" | "network" | "networkd-conf" | "resolved-conf" | "service-drop-in";

export interface Unit {
  readonly kind: UnitKind;
  /** File name without directory, e.g. "50-wg0.network". */
  readonly fileName: string;
  /** A service-drop-in's service, e.g. "NetworkManager.service" (its drop-in directory is NAME.d). */
  readonly service?: string;
  /** Comment lines under the ownership header explaining the unit as a whole. */
  readonly comment: readonly string[];
  readonly sections: readonly (Section | SectionSeries)[];
}

export interface Plan {
  /** Ownership identity: the tunnel interface. Files marked for another identity are never touched. */
  readonly identity: string;
  /** sha256 of the normalized spec; same for the JSON and TOML spelling of one spec. */
  readonly specHash: string;
  readonly units: readonly Unit[];
  /** Decisions the CLI reports in one line each (e.g. which IPv6 policy was chosen and why). */
  readonly notes: readonly string[];
  /** Static routes the units configure, all links together (what networkd sends the kernel). */
  readonly routes: number;
  /** Destinations the plan sends into the tunnel: what its peers' AllowedIPs must hold. */
  readonly tunnelled: AddressSet;
}

export function entry(key: string, value: Value): Entry {
  return { key, value };
}

export function section(name: string, entries: readonly Entry[], comment: readonly string[] = []): Section {
  return { name, comment, entries };
}

export function sectionSeries(
  name: string,
  parts: { before?: readonly Entry[]; key: string; values: TextSequence; after?: readonly Entry[] },
  comment: readonly string[] = [],
): SectionSeries {
  return { name, comment, before: parts.before ?? [], key: parts.key, values: parts.values, after: parts.after ?? [] };
}

export const isSeries = (s: Section | SectionSeries): s is SectionSeries => "values" in s;

/** The unit's sections one by one, series spelt out. */
export function sectionsOf(unit: Unit): Section[] {
  const sections: Section[] = [];
  for (const s of unit.sections) {
    if (!isSeries(s)) sections.push(s);
    else s.values.forEach((value, i) => sections.push(section(s.name, [...s.before, entry(s.key, value), ...s.after], i === 0 ? s.comment : [])));
  }
  return sections;
}
