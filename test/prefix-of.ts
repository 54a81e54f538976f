// Test data spelt as text: a prefix (or a bare address, its /32 or /128) that must parse.
import { parsePrefix, type Prefix } from "../src/prefix.js";

/** The prefix TEXT spells; test data that does not parse is a bug in the test, thrown at once. */
export function prefixOf(text: string): Prefix {
  const parsed = parsePrefix(text, { bareAddress: true });
  if (!parsed.ok) throw new Error(`test data ${JSON.stringify(text)}: ${parsed.message}`);
  return parsed.value;
}
