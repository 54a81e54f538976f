// The pipeline, read → validate → plan → render, as one call the CLI (and tests) use.

import { basename, dirname, join, resolve } from "node:path";
import type { Plan, Unit } from "./model.js";
import { loadSpec } from "./load.js";
import { displayName } from "./text.js";
import { headerLines } from "./ownership.js";
import { buildPlan, PlanError, type PlanLists, type PlanOptions } from "./plan.js";
import { readListFiles } from "./prefix-list.js";
import { renderNetworkd } from "./render-networkd.js";
import { renderNix } from "./render-nix.js";
import { loadTemplates } from "./templates.js";
import { validateSpec, type Spec, type SpecProblem } from "./spec.js";
import type { OutputFile } from "./write.js";

/** Problems listed in one error; a spec with thousands of bad items gets a count for the rest. */
export const MAX_LISTED_PROBLEMS = 100;

export class InvalidSpecError extends Error {
  constructor(readonly specPath: string, readonly problems: readonly SpecProblem[]) {
    const shown = displayName(specPath);
    const lines = problems.slice(0, MAX_LISTED_PROBLEMS).map((p) => `${shown}: ${p.path}: ${p.message}`);
    const more = problems.length - MAX_LISTED_PROBLEMS;
    if (more > 0) lines.push(`${shown}: ${more} more problem${more === 1 ? "" : "s"} not shown`);
    super(lines.join("\n"));
  }
}

/** networkd: the unit files; nix: one NixOS module, <interface>.nix; all: both. */
export const OUTPUT_FORMATS = ["networkd", "nix", "all"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface GenerateOptions {
  /** Where the networkd units (and the NixOS module) go. */
  readonly outputDir: string;
  /** Where the networkd.conf drop-in goes; default: see defaultConfDir. */
  readonly confDir?: string | undefined;
  /** Two-digit file name prefix. */
  readonly prefix: string;
  /** Which files to emit; default "networkd". */
  readonly format?: OutputFormat;
}

export interface Generated {
  readonly spec: Spec;
  readonly plan: Plan;
  readonly files: readonly OutputFile[];
  /** Every directory this output may own files in, also those it has nothing for now (their old files are stale). */
  readonly dirs: readonly string[];
  /** The contents of split.include_files and split.exclude_files, each merged into one set. */
  readonly lists: PlanLists;
}

/**
 * networkd reads its drop-ins from <dir>/networkd.conf.d beside <dir>/network
 * (/etc/systemd, /run/systemd): written into such a directory, the drop-in lands
 * beside it; anywhere else (a review directory like out/), in a subdirectory.
 */
export function defaultConfDir(outputDir: string): string {
  return basename(resolve(outputDir)) === "network" ? join(dirname(resolve(outputDir)), "networkd.conf.d") : join(outputDir, "networkd.conf.d");
}

/** resolved reads its drop-ins from resolved.conf.d beside networkd.conf.d (/etc/systemd, /run/systemd). */
export function resolvedConfDir(confDir: string): string {
  return join(dirname(confDir), "resolved.conf.d");
}

/** systemd reads unit drop-ins from <dir>/system/NAME.d beside <dir>/networkd.conf.d (/etc/systemd, /run/systemd). */
export function serviceDropInDir(confDir: string, service: string): string {
  return join(dirname(confDir), "system", `${service}.d`);
}

/** A spec that validates can still ask for the impossible (capture nothing): reported like any spec problem. */
function planOrReport(specPath: string, spec: Spec, options: PlanOptions): Plan {
  try {
    return buildPlan(spec, options);
  } catch (error) {
    if (error instanceof PlanError) throw new InvalidSpecError(specPath, [{ path: error.path, message: error.message }]);
    throw error;
  }
}

export async function generate(specPath: string, options: GenerateOptions): Promise<Generated> {
  const loaded = await loadSpec(specPath);
  const validated = validateSpec(loaded.document);
  if (!validated.ok) throw new InvalidSpecError(specPath, validated.problems);
  // Prefix list files are named relative to the spec; every bad line is a spec problem, so nothing is written.
  const { include_files, exclude_files } = validated.spec.split;
  const include = include_files && readListFiles(include_files, dirname(specPath), "split.include_files");
  const exclude = exclude_files && readListFiles(exclude_files, dirname(specPath), "split.exclude_files");
  const listProblems = [...(include?.problems ?? []), ...(exclude?.problems ?? [])];
  if (listProblems.length > 0) throw new InvalidSpecError(specPath, listProblems);
  const lists: PlanLists = { ...(include && { include: include.set }), ...(exclude && { exclude: exclude.set }) };
  const plan = planOrReport(specPath, validated.spec, { prefix: options.prefix, lists });
  // Only now: loading the template engine slows string scanning (see templates.ts).
  await loadTemplates();
  const format = options.format ?? "networkd";
  const files: OutputFile[] = [];
  const confDir = options.confDir ?? defaultConfDir(options.outputDir);
  const dirOf = (unit: Unit): string => {
    switch (unit.kind) {
      case "netdev":
      case "network":
        return options.outputDir;
      case "networkd-conf":
        return confDir;
      case "resolved-conf":
        return resolvedConfDir(confDir);
      case "service-drop-in":
        return serviceDropInDir(confDir, unit.service!);
    }
  };
  // Also the drop-in directories under --format nix: their files from a networkd run are then stale.
  const dirs = [...new Set(plan.units.map(dirOf).concat(options.outputDir, confDir, resolvedConfDir(confDir)))];
  if (format !== "nix") {
    files.push(...renderNetworkd(plan, loaded.name).map(({ unit, content }) => ({ dir: dirOf(unit), fileName: unit.fileName, content })));
  }
  if (format !== "networkd") {
    files.push({ dir: options.outputDir, fileName: `${plan.identity}.nix`, content: renderNix(plan, headerLines(plan.identity, loaded.name, plan.specHash)) });
  }
  return { spec: validated.spec, plan, files, dirs, lists };
}
