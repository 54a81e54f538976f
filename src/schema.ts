// `gen-networkd schema`: the JSON Schema of the spec, exactly as committed in
// schema/spec.schema.json (a test keeps the two equal), for editors and CI.

import { specJsonSchema } from "./spec.js";

export function schemaText(): string {
  return `${JSON.stringify(specJsonSchema(), null, 2)}\n`;
}
