// The fault campaign on input, kept: seeded, time-bounded mutations of specs (TOML and
// JSON) and prefix lists, each checked against what the README promises:
//   - the answer is a spec, or errors: never an exception of another kind (a stack trace),
//   - errors are bounded lines, each naming the place (file:line[:col] or a JSON path),
//   - a success re-parses (with the project's parser, which reads as systemd does) to exactly
//     the plan: no injected section or line, the ownership mark in place,
//   - through the real CLI (a sample): exit code 0..3, no stack trace, bounded stderr, nothing
//     written on error, and the same files as in-process,
//   - for a sample of successes, systemd's own parser (`systemd-analyze verify`) finds the same
//     keys on the same lines, and the real networkd loads the files without a warning.
// FAULT_SEED and FAULT_BUDGET_MS (default 60 s for the whole file) repeat or stretch a run.
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import TOML from "@iarna/toml";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { generate, InvalidSpecError, type Generated } from "../src/generate.js";
import { SpecSyntaxError } from "../src/load.js";
import { sectionsOf } from "../src/model.js";
import { ownerOf } from "../src/ownership.js";
import { parsePrefixList } from "../src/prefix-list.js";
import { formatValue } from "../src/render-networkd.js";
import { displayName } from "../src/text.js";
import { parseUnitFile } from "../src/unitfile.js";
import { CLI, ROOT } from "./cli-harness.js";
import { labUnavailable } from "./lab/harness.js";

const SEED = Number(process.env.FAULT_SEED ?? 20261203);
const BUDGET_MS = Number(process.env.FAULT_BUDGET_MS ?? 60_000);
/** Shares of the budget: spec mutations, prefix lists; the samples run within them. */
const SPEC_SHARE = 0.6;
const LIST_SHARE = 0.3;
/** Every Nth case also runs through the built CLI (a process each: slower). */
const CLI_EVERY = 20;
/** Successes checked with systemd-analyze verify, and with the real networkd. */
const ANALYZE_SAMPLE = 12;
const NETWORKD_SAMPLE = 3;
/** No error output of one run may be longer (the 100 problems shown, each cut). */
const MAX_STDERR = 64 * 1024;

const work = mkdtempSync(join(tmpdir(), "gen-networkd-fault-"));
cpSync(join(ROOT, "examples"), join(work, "examples"), { recursive: true });
const stats = { specCases: 0, listCases: 0, cliRuns: 0, analyzed: 0, networkdLoads: 0, successes: 0, errors: 0 };
const classes = new Map<string, number>();
const hit = (name: string) => classes.set(name, (classes.get(name) ?? 0) + 1);
const successSamples: { dir: string; generated: Generated }[] = [];

// ---------------------------------------------------------------- odd values

/** One or more characters of each class that has changed a value's meaning somewhere. */
const CHARACTER_CLASSES: Record<string, string[]> = {
  "C0 control": Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)),
  DEL: ["\u007f"],
  "C1 control": Array.from({ length: 32 }, (_, i) => String.fromCharCode(0x80 + i)),
  "line/paragraph separator": ["\u2028", "\u2029"],
  "format (bidi, zero-width, BOM)": ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2060", "\u2066", "\u2069", "\ufeff", "\u00ad", "\u061c"],
  "lone surrogate": ["\ud800", "\udfff"],
  "unicode space": ["\u00a0", "\u1680", "\u2000", "\u3000", "\u205f"],
  "noncharacter and replacement": ["\ufffe", "\uffff", "\ufffd"],
  "non-BMP": ["\u{1f600}", "\u{10ffff}"],
  "INI syntax": ["[", "]", "=", "#", ";", "\\", '"', "'", "%", "$", "`"],
  "ASCII space": [" ", "  "],
};
for (const name of Object.keys(CHARACTER_CLASSES)) classes.set(`char: ${name}`, 0);

const ODD_STRINGS = [
  "", " ", "x\n[Network]\nDNS=6.6.6.6", "/etc/systemd/network/wg0.key\\", "/etc/systemd/network/wg0.key\\\\", "/k\\\\\\", "/etc/wg0.key ", " /etc/wg0.key",
  "a".repeat(100_000), "/" + "d/".repeat(3000), "%h/%u.key", "${HOME}", "../../etc/shadow", "/etc/../wg0.key", "@local", "@nope", "0.0.0.0/0", "::/0",
  "10.0.0.1/8", "::ffff:10.0.0.0/104", "fe80::1%eth0", "198.51.100.7:51820", "[2001:db8::1]:51820", "wg0", "wg*", "lo", ".", "..", "all", "tcp", "udp",
];
const ODD_NUMBERS: unknown[] = [0, -1, 1, 0.5, -0, 253, 254, 255, 256, 5210, 5270, 32765, 32766, 65535, 65536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, Number.MAX_VALUE, 1e400, -1e400, 2n ** 53n + 1n, 2n ** 64n, -(2n ** 63n)];
const PROTOTYPE_KEYS = ["__proto__", "constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf", "__defineGetter__", "prototype"];

type Json = unknown;
type Path = (string | number)[];

/** Every path in a document (not the root), walked with a stack. */
function pathsOf(document: Json): Path[] {
  const out: Path[] = [];
  const stack: { value: Json; path: Path }[] = [{ value: document, path: [] }];
  while (stack.length) {
    const { value, path } = stack.pop()!;
    if (path.length) out.push(path);
    if (path.length > 8 || value === null || typeof value !== "object") continue;
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value as object);
    for (const [key, child] of entries) stack.push({ value: child, path: [...path, key] });
  }
  return out;
}

const getAt = (document: Json, path: Path): Json => path.reduce<Json>((v, k) => (v as Record<string | number, Json>)[k], document);
/** Sets a key as an own property, also "__proto__" (plain assignment would set the prototype). */
const define = (object: object, key: string | number, value: Json) => Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });

function setAt(document: Json, path: Path, value: Json): Json {
  if (path.length === 0) return value;
  define(getAt(document, path.slice(0, -1)) as object, path.at(-1)!, value);
  return document;
}

/**
 * A value nested DEPTH arrays deep, as a marker the serializers below spell out as text: the test
 * itself must not recurse through thousands of levels (JSON.stringify with a replacer does).
 */
const deep = (depth: number): Json => `@@deep${depth}@@`;
const spellDeep = (text: string) => text.replace(/"@@deep(\d+)@@"/g, (_m, n: string) => `${"[".repeat(Number(n))}1${"]".repeat(Number(n))}`);

type Mutation =
  | { kind: "delete"; at: number }
  | { kind: "duplicate item"; at: number }
  | { kind: "type swap"; at: number; to: number }
  | { kind: "odd number"; at: number; pick: number }
  | { kind: "odd string"; at: number; pick: number }
  | { kind: "insert character"; at: number; cls: number; pick: number; where: number }
  | { kind: "deep nesting"; at: number; depth: number }
  | { kind: "prototype key"; at: number; pick: number }
  | { kind: "unknown key"; at: number; name: string }
  | { kind: "odd key path"; name: string };

const classNames = Object.keys(CHARACTER_CLASSES);
const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("duplicate item" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("type swap" as const), at: fc.nat(), to: fc.nat(6) }),
  fc.record({ kind: fc.constant("odd number" as const), at: fc.nat(), pick: fc.nat(ODD_NUMBERS.length - 1) }),
  fc.record({ kind: fc.constant("odd string" as const), at: fc.nat(), pick: fc.nat(ODD_STRINGS.length - 1) }),
  fc.record({ kind: fc.constant("insert character" as const), at: fc.nat(), cls: fc.nat(classNames.length - 1), pick: fc.nat(), where: fc.nat() }),
  fc.record({ kind: fc.constant("deep nesting" as const), at: fc.nat(), depth: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1000, max: 5000 })) }),
  fc.record({ kind: fc.constant("prototype key" as const), at: fc.nat(), pick: fc.nat(PROTOTYPE_KEYS.length - 1) }),
  fc.record({ kind: fc.constant("unknown key" as const), at: fc.nat(), name: fc.string({ maxLength: 12 }) }),
  // Any code point (lone surrogates too) in the one free-form value that reaches the files.
  fc.record({ kind: fc.constant("odd key path" as const), name: fc.string({ unit: "binary", minLength: 1, maxLength: 16 }) }),
);

for (const kind of ["delete", "duplicate item", "type swap", "odd number", "odd string", "insert character", "deep nesting", "prototype key", "unknown key", "odd key path"]) classes.set(`spec: ${kind}`, 0);

function applyMutation(document: Json, m: Mutation): Json {
  hit(`spec: ${m.kind}`);
  if (m.kind === "odd key path") {
    const tunnel = (document as { tunnel?: Record<string, Json> }).tunnel;
    if (tunnel?.private_key_file !== undefined) tunnel.private_key_file = `/etc/systemd/network/${m.name}`;
    return document;
  }
  const paths = pathsOf(document);
  if (paths.length === 0) return document;
  const path = paths[m.at % paths.length]!;
  const parent = getAt(document, path.slice(0, -1));
  const value = getAt(document, path);
  switch (m.kind) {
    case "delete":
      if (Array.isArray(parent)) parent.splice(path.at(-1) as number, 1);
      else delete (parent as Record<string, Json>)[path.at(-1)!];
      return document;
    case "duplicate item":
      if (Array.isArray(parent)) parent.splice(path.at(-1) as number, 0, structuredClone(value));
      return document;
    case "type swap":
      return setAt(document, path, ["a string", 7, true, [], {}, [value, value], { value }][m.to]);
    case "odd number":
      return setAt(document, path, ODD_NUMBERS[m.pick]);
    case "odd string":
      return setAt(document, path, ODD_STRINGS[m.pick]);
    case "insert character": {
      const name = classNames[m.cls]!;
      hit(`char: ${name}`);
      const chars = CHARACTER_CLASSES[name]!;
      const c = chars[m.pick % chars.length]!;
      const text = typeof value === "string" ? value : typeof value === "number" || typeof value === "boolean" ? String(value) : "";
      const at = m.where % (text.length + 1);
      return setAt(document, path, text.slice(0, at) + c + text.slice(at));
    }
    case "deep nesting":
      return setAt(document, path, deep(m.depth));
    case "prototype key":
    case "unknown key": {
      const target = value !== null && typeof value === "object" && !Array.isArray(value) ? value : parent;
      if (target !== null && typeof target === "object" && !Array.isArray(target)) define(target, m.kind === "prototype key" ? PROTOTYPE_KEYS[m.pick]! : m.name, 1);
      return document;
    }
  }
}

type SpecExample = [number, Mutation[], boolean, TextMutation, number];
type TextMutation = "none" | "delete line" | "duplicate line" | "truncate" | "invalid UTF-8 byte" | "CRLF" | "CR only" | "BOM" | "NUL byte";
const TEXT_MUTATIONS: TextMutation[] = ["none", "delete line", "duplicate line", "truncate", "invalid UTF-8 byte", "CRLF", "CR only", "BOM", "NUL byte"];
for (const kind of TEXT_MUTATIONS) classes.set(`text: ${kind}`, 0);

function mutateText(text: string, kind: TextMutation, at: number): Buffer {
  hit(`text: ${kind}`);
  const lines = text.split("\n");
  const line = at % lines.length;
  const bytes = Buffer.from(text, "utf8");
  switch (kind) {
    case "none":
      return bytes;
    case "delete line":
      return Buffer.from(lines.filter((_, i) => i !== line).join("\n"));
    case "duplicate line":
      return Buffer.from([...lines.slice(0, line + 1), ...lines.slice(line)].join("\n"));
    case "truncate":
      return bytes.subarray(0, at % (bytes.length + 1));
    case "invalid UTF-8 byte": {
      const i = at % (bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, i), Buffer.from([[0xff, 0xc3, 0x80, 0xed][at % 4]!]), bytes.subarray(i)]);
    }
    case "CRLF":
      return Buffer.from(text.replace(/\n/g, "\r\n"));
    case "CR only":
      return Buffer.from(text.replace(/\n/g, "\r"));
    case "BOM":
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]);
    case "NUL byte": {
      const i = at % (bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, i), Buffer.from([0]), bytes.subarray(i)]);
    }
  }
}

/** JSON text of a document that may hold BigInts (written as their digits) and any depth. */
function toJson(document: Json): string {
  const marks: string[] = [];
  const text = JSON.stringify(document, (_k, v: unknown) => (typeof v === "bigint" ? `@@big${marks.push(v.toString()) - 1}@@` : v));
  return spellDeep(text.replace(/"@@big(\d+)@@"/g, (_m, i: string) => marks[Number(i)]!));
}

/** TOML text of a document, or undefined when TOML cannot say it (null, mixed arrays, too deep). */
function toToml(document: Json): string | undefined {
  try {
    return spellDeep(TOML.stringify(document as TOML.JsonMap));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- invariants

/** Checks an error message: bounded lines, each naming the spec and a place. */
function checkErrorText(message: string, specShown: string, context: string): void {
  assert.ok(message.length <= MAX_STDERR, `${context}: ${message.length} characters of errors, starting ${JSON.stringify(message.slice(0, 600))}`);
  const lines = message.split("\n");
  assert.ok(lines.length <= 101, `${context}: ${lines.length} lines`);
  for (const line of lines) {
    assert.ok(line.length <= 2000, `${context}: a ${line.length}-character line: ${line.slice(0, 300)}`);
    assert.ok(line.startsWith(`${specShown}:`), `${context}: does not name the spec: ${line.slice(0, 300)}`);
    const rest = line.slice(specShown.length + 1);
    const place = /^(\d+(:\d+)?:|\s\S.*?: |\s\d+ more problems? not shown$|\s(cannot read the spec|unknown spec format|not valid UTF-8))/.exec(rest);
    assert.ok(place, `${context}: no place named: ${line.slice(0, 300)}`);
    assert.not.match(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, `${context}: a raw control character in: ${JSON.stringify(line.slice(0, 300))}`);
  }
}

/** A success: every networkd file re-parses to exactly its planned sections, under our mark. */
function checkSuccess(generated: Generated, context: string): void {
  const byName = new Map(generated.files.map((f) => [f.fileName, f.content]));
  for (const unit of generated.plan.units) {
    const content = byName.get(unit.fileName);
    assert.ok(content !== undefined, `${context}: ${unit.fileName} not rendered`);
    assert.is(ownerOf(content!), generated.plan.identity, `${context}: ${unit.fileName} lost its mark`);
    const expected = sectionsOf(unit).map((s) => ({ name: s.name, entries: s.entries.map((e) => ({ key: e.key, value: formatValue(e.value) })) }));
    const actual = parseUnitFile(content!).map((s) => ({ name: s.name, entries: s.entries }));
    assert.equal(actual, expected, `${context}: ${unit.fileName} does not read back as planned`);
  }
}

let lastError = "";

/** Runs the pipeline in-process on a spec file; returns the outcome for the CLI sample to compare (the error text in lastError). */
async function checkCase(specPath: string, context: string): Promise<Generated | "error"> {
  try {
    const generated = await generate(specPath, { outputDir: join(work, "unused-out"), prefix: "50", format: "all" });
    checkSuccess(generated, context);
    stats.successes++;
    return generated;
  } catch (error) {
    if (!(error instanceof InvalidSpecError || error instanceof SpecSyntaxError)) {
      throw new Error(`${context}: ${(error as Error)?.stack ?? String(error)}`);
    }
    checkErrorText(error.message, displayName(specPath), context);
    lastError = error.message;
    stats.errors++;
    return "error";
  }
}

/** The built CLI on the same spec: exit code, no stack trace, bounded stderr, nothing written on error, same files. */
function checkCli(specPath: string, outcome: Generated | "error", context: string): void {
  if (!existsSync(CLI)) return;
  stats.cliRuns++;
  const out = mkdtempSync(join(work, "cli-"));
  const dir = join(out, "net");
  const result = spawnSync(process.execPath, [CLI, specPath, "-o", dir, "--format", "all"], { cwd: work, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  try {
    assert.ok(result.status !== null && result.status >= 0 && result.status <= 3, `${context}: exit ${result.status} (${result.signal}): ${result.stderr.slice(0, 500)}`);
    assert.not.match(result.stderr, /\n\s+at \S|RangeError|TypeError|ReferenceError/, `${context}: a stack trace: ${result.stderr.slice(0, 500)}`);
    assert.ok(result.stderr.length <= MAX_STDERR, `${context}: ${result.stderr.length} characters on stderr`);
    if (outcome === "error") {
      assert.is(result.status, 1, `${context}: ${result.stderr.slice(0, 300)}`);
      assert.not.ok(existsSync(dir), `${context}: wrote ${dir} on error`);
    } else {
      assert.is(result.status, 0, `${context}: ${result.stderr.slice(0, 300)}`);
      for (const file of outcome.files) {
        const path = join(file.dir.replace(join(work, "unused-out"), dir), file.fileName);
        assert.is(readFileSync(path, "utf8"), file.content, `${context}: the CLI wrote ${path} differently`);
      }
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Keeps a small success for the systemd samples. */
function keepSample(generated: Generated | "error"): void {
  if (generated === "error" || successSamples.length >= ANALYZE_SAMPLE) return;
  const networkd = generated.files.filter((f) => !f.fileName.endsWith(".nix"));
  if (networkd.some((f) => f.content.length > 50_000)) return;
  const dir = mkdtempSync(join(work, "sample-"));
  for (const f of networkd) {
    const target = f.fileName.endsWith(".conf") ? join(dir, "networkd.conf.d") : dir;
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, f.fileName), f.content);
  }
  successSamples.push({ dir, generated });
}

// ---------------------------------------------------------------- specs

const BASES = ["examples/seed.toml", "examples/laptop.toml", "examples/per-user.toml", "examples/unmanaged.toml", "examples/country/country.toml", "examples/seed.json"];
const baseDocuments = BASES.map((path) => ({
  path,
  document: path.endsWith(".json") ? JSON.parse(readFileSync(join(work, path), "utf8")) : TOML.parse(readFileSync(join(work, path), "utf8")),
}));

test("mutated specs (TOML and JSON): errors name a place, successes read back as planned", async () => {
  const started = Date.now();
  await fc.assert(
    fc.asyncProperty(
      fc.nat(baseDocuments.length - 1),
      fc.array(mutationArbitrary, { minLength: 0, maxLength: 4 }),
      fc.boolean(),
      fc.constantFrom(...TEXT_MUTATIONS),
      fc.nat(),
      async (base, mutations, asJson, textMutation, at) => {
        const { path, document: original } = baseDocuments[base]!;
        let document = structuredClone(original);
        for (const m of mutations) document = applyMutation(document, m);
        let text = asJson ? undefined : toToml(document);
        if (!asJson && text === undefined) hit("spec: not representable in TOML (written as JSON)");
        const format = text === undefined ? "json" : "toml";
        text ??= toJson(document);
        hit(`format: ${format}`);
        const dir = join(work, path.includes("country") ? "examples/country" : "examples");
        const specPath = join(dir, `case-${stats.specCases}.${format}`);
        writeFileSync(specPath, mutateText(text, textMutation, at));
        const context = `spec case ${stats.specCases} (seed ${SEED}; ${path}, ${JSON.stringify(mutations).slice(0, 300)}, ${format}, ${textMutation})`;
        stats.specCases++;
        try {
          const outcome = await checkCase(specPath, context);
          keepSample(outcome);
          if (stats.specCases % CLI_EVERY === 0) checkCli(specPath, outcome, context);
        } finally {
          rmSync(specPath, { force: true });
        }
      },
    ),
    {
      seed: SEED,
      numRuns: 1_000_000,
      interruptAfterTimeLimit: BUDGET_MS * SPEC_SHARE - (Date.now() - started),
      markInterruptAsFailure: false,
      endOnFailure: true,
      includeErrorInReport: true,
      // First every class once, on the seed spec, whatever the random draws reach.
      examples: [
        ...TEXT_MUTATIONS.map((t, i): SpecExample => [0, [], i % 2 === 0, t, 7 * i + 3]),
        ...classNames.flatMap((_, cls): SpecExample[] => [0, 1].map((asJson) => [0, [{ kind: "insert character", at: 3 + cls, cls, pick: cls, where: 5 }], asJson === 1, "none", 0])),
        ...(["delete", "duplicate item", "prototype key"] as const).map((kind): SpecExample => [0, [{ kind, at: 5, pick: 1 } as Mutation], false, "none", 0]),
      ],
    },
  );
  assert.ok(stats.specCases > 20, `only ${stats.specCases} spec cases in the budget`);
});

// ---------------------------------------------------------------- prefix lists

/**
 * Kinds of list lines: valid ones, and broken ones another tool might read differently.
 * Each entry: name, line text, and whether gen-networkd must accept it.
 */
const LINE_KINDS: [string, string, boolean][] = [
  ["IPv4 prefix", "203.0.113.0/24", true],
  ["IPv4 bare address", "203.0.113.7", true],
  ["IPv4 /0", "0.0.0.0/0", true],
  ["IPv4 /32", "198.51.100.1/32", true],
  ["IPv6 prefix", "2001:db8::/32", true],
  ["IPv6 bare address", "2001:db8::1", true],
  ["IPv6 /0", "::/0", true],
  ["IPv6 /128", "2001:db8::1/128", true],
  ["IPv6 uppercase", "2001:DB8::/32", true],
  ["IPv6 full form", "2001:0db8:0000:0000:0000:0000:0000:0000/32", true],
  ["IPv6 embedded IPv4", "::ffff:192.0.2.0/120", true],
  ["comment line", "# a comment", true],
  ["semicolon line", "; not a comment here", false],
  ["trailing comment", "192.0.2.0/24 # test net", true],
  ["trailing comment no space", "192.0.2.0/24#x", true],
  ["blank", "", true],
  ["spaces only", "   ", true],
  ["tabs around", "\t192.0.2.0/24\t", true],
  ["IPv4 host bits", "10.0.0.1/8", false],
  ["IPv6 host bits", "2001:db8::1/32", false],
  ["IPv4 octal part", "010.0.0.0/8", false],
  ["IPv4 octal address", "0177.0.0.1", false],
  ["IPv4 hex part", "0x0a.0.0.0/8", false],
  ["IPv4 hex address", "0xc0000201", false],
  ["IPv4 decimal integer", "3221225985", false],
  ["IPv4 three parts", "10.1.2/24", false],
  ["IPv4 two parts", "10.1/16", false],
  ["IPv4 one part", "10/8", false],
  ["IPv4 five parts", "1.2.3.4.5/32", false],
  ["IPv4 part 256", "256.0.0.0/8", false],
  ["IPv4 huge part", "99999999999999999999.0.0.0/8", false],
  ["IPv4 negative part", "-1.0.0.0/8", false],
  ["IPv4 plus sign", "+1.0.0.0/8", false],
  ["IPv4 trailing dot", "10.0.0.0./8", false],
  ["IPv4 leading dot", ".10.0.0.0/8", false],
  ["IPv4 empty part", "10..0.0/16", false],
  ["IPv4 length 33", "10.0.0.0/33", false],
  ["IPv4 length huge", "10.0.0.0/99999999999999999999", false],
  ["IPv4 length negative", "10.0.0.0/-1", false],
  ["IPv4 length plus", "10.0.0.0/+8", false],
  ["IPv4 length leading zero", "10.0.0.0/08", false],
  ["IPv4 length hex", "10.0.0.0/0x8", false],
  ["IPv4 length empty", "10.0.0.0/", false],
  ["IPv4 netmask", "10.0.0.0/255.0.0.0", false],
  ["IPv4 two slashes", "10.0.0.0//8", false],
  ["IPv4 space before slash", "10.0.0.0 /8", false],
  ["IPv4 space after slash", "10.0.0.0/ 8", false],
  ["IPv4 range", "10.0.0.0-10.0.0.255", false],
  ["IPv4 with port", "192.0.2.1:80", false],
  ["IPv4 fullwidth digits", "\uff11\uff10.0.0.0/8", false],
  ["IPv4 Arabic-Indic digits", "\u0661\u0660.0.0.0/8", false],
  ["IPv4 with NBSP", "10.0.0.0/8\u00a0", false],
  ["IPv4 with zero-width space", "10.0.0.0\u200b/8", false],
  ["IPv4 two prefixes", "10.0.0.0/8 192.168.0.0/16", false],
  ["IPv4 comma list", "10.0.0.0/8,192.168.0.0/16", false],
  ["IPv4 quoted", '"10.0.0.0/8"', false],
  ["IPv4 in brackets", "[10.0.0.0]/8", false],
  ["IPv6 zone id", "fe80::1%eth0", false],
  ["IPv6 zone id with length", "fe80::%eth0/64", false],
  ["IPv6 in brackets", "[2001:db8::]/32", false],
  ["IPv6 with port", "[2001:db8::1]:443", false],
  ["IPv6 two ::", "2001::db8::1", false],
  ["IPv6 :::", ":::/0", false],
  ["IPv6 five hex digits", "2001:0db80::/32", false],
  ["IPv6 nine groups", "1:2:3:4:5:6:7:8:9/128", false],
  ["IPv6 seven groups", "1:2:3:4:5:6:7/128", false],
  ["IPv6 leading single colon", ":2001:db8::/32", false],
  ["IPv6 trailing single colon", "2001:db8::1:/128", false],
  ["IPv6 bad hex", "2001:db8::g/128", false],
  ["IPv6 length 129", "2001:db8::/129", false],
  ["IPv6 bad embedded IPv4", "::ffff:1.2.3.256/128", false],
  ["IPv6 embedded IPv4 not last", "::1.2.3.4:1/128", false],
  ["IPv6 embedded octal", "::ffff:010.0.0.1/128", false],
  ["IPv6 v4-mapped host bits", "::ffff:10.0.0.1/104", false],
  ["IPv6 length leading zero", "2001:db8::/032", false],
  ["NUL in line", "10.0.0.0/8\u0000", false],
  ["NUL alone", "\u0000", false],
  ["vertical tab", "10.0.0.0/8\u000b", false],
  ["form feed", "\u000c10.0.0.0/8", false],
  ["escape sequence", "\u001b[31m10.0.0.0/8", false],
  ["DEL", "10.0.0.0/8\u007f", false],
  ["C1 NEL", "10.0.0.0/8\u0085", false],
  ["line separator", "10.0.0.0/8\u20282.0.0.0/8", false],
  ["bidi override", "\u202e10.0.0.0/8", false],
  ["BOM inside a line", "10.0.0.0\ufeff/8", false],
  ["lone surrogate", "10.0.0.0/8\ud800", false],
  ["replacement character", "10.0.0.0/8\ufffd", false],
  ["emoji", "\u{1f600}", false],
  ["hostname", "example.com", false],
  ["URL", "http://192.0.2.1/", false],
  ["word", "any", false],
  ["dash", "-", false],
  ["asterisk", "*", false],
  ["huge line of digits", "1".repeat(200_000), false],
  ["huge line of dots", ".".repeat(200_000), false],
  ["huge IPv6 garbage", ":".repeat(100_000), false],
  ["huge comment", `# ${"x".repeat(200_000)}`, true],
  ["JSON array", '["10.0.0.0/8"]', false],
  ["CSV row", "10.0.0.0,10.255.255.255,NL", false],
  ["iptables style", "-A INPUT -s 10.0.0.0/8", false],
  ["ipset style", "add set 10.0.0.0/8", false],
];

/** Whole-file faults, around a list built from the kinds above. */
type ListFault = "none" | "CRLF" | "CR only" | "BOM" | "gzip" | "gzip of garbage" | "truncated gzip" | "not gzip but .gz" | "double gzip" | "gzip of NULs" | "random bytes" | "empty" | "no final newline" | "invalid UTF-8";
const LIST_FAULTS: ListFault[] = ["none", "CRLF", "CR only", "BOM", "gzip", "gzip of garbage", "truncated gzip", "not gzip but .gz", "double gzip", "gzip of NULs", "random bytes", "empty", "no final newline", "invalid UTF-8"];
for (const fault of LIST_FAULTS) classes.set(`list fault: ${fault}`, 0);

function listBytes(lines: string[], fault: ListFault, noise: Uint8Array): { bytes: Buffer; gz: boolean } {
  const text = `${lines.join("\n")}\n`;
  switch (fault) {
    case "none":
      return { bytes: Buffer.from(text), gz: false };
    case "CRLF":
      return { bytes: Buffer.from(text.replace(/\n/g, "\r\n")), gz: false };
    case "CR only":
      return { bytes: Buffer.from(text.replace(/\n/g, "\r")), gz: false };
    case "BOM":
      return { bytes: Buffer.from(`\ufeff${text}`), gz: false };
    case "gzip":
      return { bytes: gzipSync(text), gz: true };
    case "gzip of garbage":
      return { bytes: gzipSync(Buffer.from(noise)), gz: true };
    case "truncated gzip": {
      const z = gzipSync(text);
      return { bytes: z.subarray(0, Math.max(1, noise.length % z.length)), gz: true };
    }
    case "not gzip but .gz":
      return { bytes: Buffer.from(text), gz: true };
    case "double gzip":
      return { bytes: gzipSync(gzipSync(text)), gz: true };
    case "gzip of NULs":
      return { bytes: gzipSync(Buffer.alloc(4 * 1024 * 1024)), gz: true };
    case "random bytes":
      return { bytes: Buffer.from(noise), gz: false };
    case "empty":
      return { bytes: Buffer.alloc(0), gz: false };
    case "no final newline":
      return { bytes: Buffer.from(lines.join("\n")), gz: false };
    case "invalid UTF-8":
      return { bytes: Buffer.concat([Buffer.from(text), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(text)]), gz: false };
  }
}

/** An independent reading of a line gen-networkd accepted: node's address parser, a decimal length in range, no host bits. */
function acceptedByReference(line: string): boolean {
  const content = line.replace(/#.*$/, "").replace(/^[ \t\r]+|[ \t\r]+$/g, "");
  if (content === "") return true;
  const [address, length, extra] = content.split("/");
  if (extra !== undefined || address === undefined || address.includes("%")) return false;
  const family = isIP(address);
  if (family === 0) return false;
  const bits = family === 4 ? 32 : 128;
  if (length !== undefined && !(/^(0|[1-9][0-9]{0,2})$/.test(length) && Number(length) <= bits)) return false;
  return true;
}

test("every kind of list line on its own: accepted exactly when it should be, and then by an independent parser too", () => {
  for (const [name, line, valid] of LINE_KINDS) {
    const list = parsePrefixList(`${line}\n`);
    hit(`list line: ${name}`);
    assert.is(list.problemCount === 0, valid, `${name}: ${JSON.stringify(line.slice(0, 80))} ${list.problems[0]?.message ?? "accepted"}`);
    if (list.problemCount === 0) assert.ok(acceptedByReference(line), `${name}: accepted, but not a plain prefix to node's parser`);
  }
});

test("random prefix lists with whole-file faults: errors name file and line, successes read back as planned", async () => {
  const started = Date.now();
  const seedSpec = readFileSync(join(work, "examples/seed.toml"), "utf8");
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.nat(LINE_KINDS.length - 1), { minLength: 0, maxLength: 12 }),
      fc.constantFrom(...LIST_FAULTS),
      fc.uint8Array({ minLength: 1, maxLength: 512 }),
      fc.boolean(),
      async (kinds, fault, noise, asInclude) => {
        hit(`list fault: ${fault}`);
        const lines = kinds.map((k) => LINE_KINDS[k]![1]);
        const { bytes, gz } = listBytes(lines, fault, noise);
        const n = stats.listCases++;
        const listName = `list-${n}.txt${gz ? ".gz" : ""}`;
        writeFileSync(join(work, "examples", listName), bytes);
        const key = asInclude ? "include_files" : "exclude_files";
        const specPath = join(work, "examples", `list-${n}.toml`);
        writeFileSync(specPath, seedSpec.replace("[split]", `[split]\n${key} = ["${listName}"]`));
        const context = `list case ${n} (seed ${SEED}; ${fault}, kinds ${kinds.map((k) => LINE_KINDS[k]![0]).join(" | ")})`;
        try {
          const outcome = await checkCase(specPath, context);
          // Faults that keep the lines decide nothing themselves; the others make any list empty or broken.
          const keepsLines = ["none", "CRLF", "CR only", "BOM", "gzip", "no final newline"].includes(fault);
          const valid = fault === "empty" || (keepsLines && kinds.every((k) => LINE_KINDS[k]![2]));
          const broken = keepsLines ? !valid : !["empty", "gzip of garbage", "random bytes"].includes(fault);
          // A valid list may still leave nothing to capture (excluding ::/0, including nothing): a plan problem, not a line.
          if (valid && outcome === "error" && lastError.includes(`${listName}:`)) assert.unreachable(`${context}: a valid list was refused: ${lastError}`);
          if (broken && outcome !== "error") assert.unreachable(`${context}: a broken list was accepted`);
          if (n % CLI_EVERY === 0) checkCli(specPath, outcome, context);
        } finally {
          rmSync(specPath, { force: true });
          rmSync(join(work, "examples", listName), { force: true });
        }
      },
    ),
    {
      seed: SEED,
      numRuns: 1_000_000,
      interruptAfterTimeLimit: BUDGET_MS * LIST_SHARE - (Date.now() - started),
      markInterruptAsFailure: false,
      endOnFailure: true,
      includeErrorInReport: true,
      // Every file fault once, first on valid lines, whatever the random draws reach.
      examples: LIST_FAULTS.map((fault, i): [number[], ListFault, Uint8Array, boolean] => [[0, 4, 11, 13], fault, Uint8Array.from([i + 1, 10, 48]), i % 2 === 1]),
    },
  );
  assert.ok(stats.listCases > 20, `only ${stats.listCases} list cases in the budget`);
});

// ---------------------------------------------------------------- systemd's own readers

const analyze = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" }).status === 0;

(analyze ? test : test.skip)("systemd-analyze verify finds the keys our parser finds, on successes of the campaign", () => {
  assert.ok(successSamples.length > 0, "no success to check");
  for (const { dir } of successSamples) {
    for (const name of readdirSync(dir).filter((n) => /\.(netdev|network)$/.test(n))) {
      const text = readFileSync(join(dir, name), "utf8");
      // Every section read as [Unit], where none of networkd's keys is known: systemd names each key line.
      const unit = `${text.replace(/^\[[A-Za-z]+\]$/gm, "[Unit]")}\n[Service]\nExecStart=/bin/true\n`;
      const path = join(dir, `${name.replace(/\W/g, "_")}.service`);
      writeFileSync(path, unit);
      const result = spawnSync("systemd-analyze", ["verify", path], { encoding: "utf8" });
      const seen = [...`${result.stdout}${result.stderr}`.matchAll(/Unknown key '([^']*)' in section \[Unit\]/g)].map((m) => m[1]);
      const ours = parseUnitFile(unit).filter((s) => s.name === "Unit").flatMap((s) => s.entries.map((e) => e.key));
      assert.equal(seen, ours, `${dir}/${name}`);
      stats.analyzed++;
    }
  }
});

const lab = labUnavailable();
(lab === null ? test : test.skip)("the real networkd loads a sample of the campaign's successes without a warning", async () => {
  const { networkdParseWarnings } = await import("./lab/lab.js");
  for (const { dir } of successSamples.slice(0, NETWORKD_SAMPLE)) {
    const { warnings } = await networkdParseWarnings(dir, "fault");
    assert.equal(warnings, [], dir);
    stats.networkdLoads++;
  }
});

test.after(() => {
  rmSync(work, { recursive: true, force: true });
  const covered = [...classes].filter(([, n]) => n > 0);
  const missed = [...classes].filter(([, n]) => n === 0).map(([name]) => name);
  console.log(
    `fault campaign (seed ${SEED}, budget ${BUDGET_MS / 1000} s): ${stats.specCases} spec cases, ${stats.listCases} list cases, ` +
      `${stats.successes} successes, ${stats.errors} refusals; ${stats.cliRuns} through the CLI, ${stats.analyzed} files checked by systemd-analyze, ` +
      `${stats.networkdLoads} loaded by networkd; ${covered.length} classes covered (${LINE_KINDS.length} kinds of list line, ${LIST_FAULTS.length} file faults)` +
      (missed.length ? `; not reached: ${missed.join(", ")}` : ""),
  );
});

test("every class of fault was tried", () => {
  // Runs last (uvu keeps the order): the campaign above has had its budget.
  const missed = [...classes].filter(([, n]) => n === 0).map(([name]) => name);
  assert.equal(missed, [], `classes never reached: ${missed.join(", ")}`);
});

test.run();
