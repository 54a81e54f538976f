// One nunjucks environment for every template: plain text, not HTML.

import nunjucks from "nunjucks";
import { fileURLToPath } from "node:url";

const TEMPLATE_DIR = fileURLToPath(new URL("../templates", import.meta.url));

// autoescape off: these are config files, and "A&B" must stay "A&B".
// throwOnUndefined: a missing field is a bug, never an empty line in the output.
const environment = new nunjucks.Environment(new nunjucks.FileSystemLoader(TEMPLATE_DIR), {
  autoescape: false,
  throwOnUndefined: true,
  trimBlocks: false,
  lstripBlocks: false,
});

export function renderTemplate(name: string, context: object): string {
  return environment.render(name, context);
}
