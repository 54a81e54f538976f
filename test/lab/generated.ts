// The generated files a lab host applies, read back from its directory.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Section } from "../../src/model.js";
import { parseUnitFile } from "../../src/unitfile.js";
import { matchName } from "./expect.js";

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
