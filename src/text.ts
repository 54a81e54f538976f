// Showing text from the user (values, keys, file names, bad lines) safely: on one
// line, every invisible or line-breaking character spelt as an escape, and never
// more than a bounded prefix, so one bad input cannot flood a terminal.

/**
 * Characters that break or hide lines, in any tool that shows or parses our files: control
 * characters (C0, DEL and C1, which systemd's unichar_is_control counts too; U+0085 is a line
 * break in some readers), format characters (bidi overrides, zero-width and BOM characters that
 * make two different strings look alike), the Unicode line and paragraph separators (which
 * JavaScript and others read as line ends), and lone surrogates (they have no UTF-8 form and
 * would be written as U+FFFD).
 */
export const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const INVISIBLE_ALL = new RegExp(INVISIBLE.source, "gu");

/** Text shown in messages: at most this many characters of a value, then a count. */
export const SHOWN_CHARACTERS = 80;

const hex = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** A JSON string literal of the text, escaping what JSON.stringify leaves raw (U+2028, C1, format characters). */
function literal(text: string): string {
  return JSON.stringify(text).replace(INVISIBLE_ALL, hex);
}

/** The text with every invisible character (see INVISIBLE) as a \\u escape: for messages of other parsers, which may quote input raw. */
export function escapeInvisible(text: string): string {
  return text.replace(INVISIBLE_ALL, hex);
}

/** The text as a quoted, escaped literal of at most about `max` characters, when cut with the full length said. */
export function quoteText(text: string, max = SHOWN_CHARACTERS): string {
  const whole = literal(text.slice(0, max + 1));
  if (text.length <= max && whole.length <= max + 2) return whole;
  // The longest start whose literal fits (escapes take up to six characters each).
  let [low, high] = [0, Math.min(max, text.length)];
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (literal(text.slice(0, middle)).length <= max + 2) low = middle;
    else high = middle - 1;
  }
  return `${literal(text.slice(0, low)).slice(0, -1)}…" (${text.length} characters)`;
}

/** Any value, as messages quote it: strings as quoteText, numbers and BigInts as written, the rest as bounded JSON. */
export function quoteValue(value: unknown): string {
  if (typeof value === "string") return quoteText(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") return String(value);
  if (value === undefined) return "nothing";
  let json: string | undefined;
  try {
    json = JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  } catch {
    json = undefined; // a document too deep to stringify
  }
  if (json === undefined) return Array.isArray(value) ? "an array" : "an object";
  return json.length <= SHOWN_CHARACTERS ? json.replace(INVISIBLE_ALL, hex) : `${json.slice(0, SHOWN_CHARACTERS).replace(INVISIBLE_ALL, hex)}… (${json.length} characters)`;
}

/** A file name as headers and messages show it: as it is when plain, else quoted and escaped. */
export function displayName(name: string): string {
  return INVISIBLE.test(name) || name.startsWith('"') ? literal(name) : name;
}
