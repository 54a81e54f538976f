// One nunjucks environment for every template: plain text, not HTML.
//
// nunjucks is loaded by loadTemplates, once the prefix lists are read, not when
// the CLI starts: loading it makes String.prototype the prototype of its
// SafeString, after which V8 runs our character-scanning loops about 1.5x slower
// (a 100k-line IPv6 list: 100 -> 155 ms, the same code with nothing else loaded).

import type { Environment } from "nunjucks";
import { fileURLToPath } from "node:url";

const TEMPLATE_DIR = fileURLToPath(new URL("../templates", import.meta.url));

let environment: Environment | undefined;

/** Loads nunjucks and the environment; renderTemplate needs this done first. */
export async function loadTemplates(): Promise<void> {
  if (environment !== undefined) return;
  const { default: nunjucks } = await import("nunjucks");
  // autoescape off: these are config files, and "A&B" must stay "A&B".
  // throwOnUndefined: a missing field is a bug, never an empty line in the output.
  environment = new nunjucks.Environment(new nunjucks.FileSystemLoader(TEMPLATE_DIR), {
    autoescape: false,
    throwOnUndefined: true,
    trimBlocks: false,
    lstripBlocks: false,
  });
}

export function renderTemplate(name: string, context: object): string {
  if (environment === undefined) throw new Error("renderTemplate: templates not loaded (await loadTemplates() first)");
  return environment.render(name, context);
}
