// The two sides every lab check compares: what the generated files ask for (read
// back from the host's directory), and what the kernel holds, both in the lab's
// canonical text form.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Section } from "../../src/model.js";
import { parseUnitFile } from "../../src/unitfile.js";
import { canonKernelRoute, canonKernelRule, matchName, routesFromNetwork, rulesFromNetwork, tablesOf } from "./expect.js";
import type { Lab } from "./lab.js";

export interface KernelState {
  rules: string[];
  routes: string[];
}

export interface PlannedState extends KernelState {
  /** Every table the plan's rules and routes use. */
  tables: string[];
}

export interface GeneratedFile {
  readonly name: string;
  readonly text: string;
  readonly sections: Section[];
}

/** The .network and .netdev files in a directory, in name order. */
export async function readGenerated(dir: string): Promise<GeneratedFile[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".network") || n.endsWith(".netdev")).sort();
  return Promise.all(
    names.map(async (name) => {
      const text = await readFile(join(dir, name), "utf8");
      return { name, text, sections: parseUnitFile(text) };
    }),
  );
}

/** lan0 and every link a generated .network matches (tunnels and anchors): what networkd must configure. */
export function linksOf(files: readonly GeneratedFile[]): string[] {
  const names = files.filter((f) => f.name.endsWith(".network")).map((f) => matchName(f.sections));
  return ["lan0", ...new Set(names.filter((n): n is string => !!n))];
}

/** The rules and routes the generated .network files ask for (main's own routes left out), and their tables. */
export function plannedState(files: readonly GeneratedFile[]): PlannedState {
  const rules: string[] = [];
  const routes: string[] = [];
  const tables = new Set<string>();
  for (const f of files) {
    if (!f.name.endsWith(".network")) continue;
    rules.push(...rulesFromNetwork(f.sections));
    routes.push(...routesFromNetwork(f.sections, matchName(f.sections) ?? "?").filter((r) => !r.startsWith("table main ")));
    for (const t of tablesOf(f.sections)) tables.add(t);
  }
  return { rules: rules.sort(), routes: routes.sort(), tables: [...tables].sort() };
}

/** The kernel's rules (its own three left out) and the contents of TABLES in both families. */
export async function kernelState(lab: Lab, tables: readonly string[]): Promise<KernelState> {
  const rules = (await lab.rules()).map(canonKernelRule).sort();
  const routes: string[] = [];
  for (const table of tables) {
    // One at a time: a spread of a few hundred thousand arguments overflows the stack.
    for (const family of ["ipv4", "ipv6"] as const) for (const r of await lab.routes(table, family)) routes.push(canonKernelRoute(r, table, family));
  }
  return { rules, routes: routes.sort() };
}
