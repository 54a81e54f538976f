#!/usr/bin/env node
// npm run bench: whole-process time and peak memory of gen-networkd on large
// prefix lists, next to the reference aggregators on the same data, with a
// check that every emitted table gives the list's verdicts (longest-prefix match done here).
//
// For each seeded synthetic list (bench/synthetic.mjs) it writes a spec that
// excludes the list (split.exclude_files, nothing else excluded), runs the real
// CLI under /usr/bin/time (start, read, parse, merge, plan, render, write), and
// runs `iprange --optimize` (IPv4) and Perl's Net::CIDR::Lite (IPv6) on the
// same list. Each figure is the median of BENCH_RUNS runs (default 5).
// Results go to stdout and to bench/results.md (whose section on applying
// large route sets in the lab comes from bench/apply-lab.ts and is kept).
//
//   npm run bench                 # everything
//   BENCH_ONLY=ipv4-100k npm run bench   # one data set (name prefix), results.md untouched

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { countryList, ipv4List, ipv6List } from "./synthetic.mjs";
// Real data: GeoLite2-derived country lists from the geoip-country devDependency, made at bench time.
import { countryLists } from "./geoip-lists.ts";

const root = new URL("..", import.meta.url).pathname;
const cli = join(root, "dist/cli.js");
const runs = Number(process.env.BENCH_RUNS ?? 5);
const only = process.env.BENCH_ONLY;

const PERL_AGGREGATE = 'my $c = Net::CIDR::Lite->new; while (<>) { s/#.*//; s/^\\s+|\\s+$//g; $c->add_any($_) if length } print "$_\\n" for $c->list';

const datasets = [
  { name: "ipv4-10k", family: 4, lines: () => ipv4List(10_000, 4) },
  { name: "ipv4-100k", family: 4, lines: () => ipv4List(100_000, 4) },
  { name: "ipv4-1M", family: 4, lines: () => ipv4List(1_000_000, 4) },
  { name: "ipv6-10k", family: 6, lines: () => ipv6List(10_000, 6) },
  { name: "ipv6-100k", family: 6, lines: () => ipv6List(100_000, 6) },
  { name: "ipv6-1M", family: 6, lines: () => ipv6List(1_000_000, 6) },
  { name: "country", family: "mixed", lines: () => countryList(1) },
  ...["CN", "DE", "US"].map((code) => ({ name: code, family: "mixed", lines: () => countryLists([code])[0].text.split("\n") })),
].filter((d) => !only || d.name.startsWith(only));

const work = mkdtempSync(join(tmpdir(), "gen-networkd-bench-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

/** Runs a command under /usr/bin/time: wall seconds and peak RSS in MB, stdout to a file. */
function timed(command, args, stdoutFile) {
  const timeFile = join(work, "time.txt");
  const result = spawnSync("/usr/bin/time", ["-o", timeFile, "-f", "%e %M", command, ...args], {
    cwd: work,
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 1 << 30,
  });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${result.stderr}`);
  if (stdoutFile) writeFileSync(stdoutFile, result.stdout);
  const [wall, rssKb] = readFileSync(timeFile, "utf8").trim().split("\n").at(-1).split(" ").map(Number);
  return { wall, rss: rssKb / 1024, stderr: result.stderr.toString() };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function repeat(times, run) {
  const results = Array.from({ length: times }, run);
  return { wall: median(results.map((r) => r.wall)), rss: median(results.map((r) => r.rss)), stderr: results.at(-1).stderr };
}

const lines = (text) => text.split("\n").filter((l) => l !== "");

/** An IPv6 prefix's text in RFC 5952 form, by Node's URL parser (not by the code under test). */
function rfc5952(cidr) {
  const [address, length] = cidr.split("/");
  return `${new URL(`http://[${address}]/`).hostname.slice(1, -1)}/${length}`;
}

/** The routes gen-networkd wrote, per family: [{ kind: "tunnel" (on wg0) | "throw" | "unreachable" (on the anchor), file, dst }]. */
function emittedRoutes(outDir) {
  const routes = { 4: [], 6: [] };
  for (const file of readdirSync(outDir).filter((name) => name.endsWith(".network"))) {
    for (const [section] of readFileSync(join(outDir, file), "utf8").matchAll(/^\[Route\]\n(?:[A-Za-z]+=.*\n?)+/gm)) {
      const dst = /^Destination=(\S+)$/m.exec(section)[1];
      const type = /^Type=(\S+)$/m.exec(section)?.[1];
      routes[dst.includes(":") ? 6 : 4].push({ kind: type === "throw" ? "throw" : type === "unreachable" ? "unreachable" : "tunnel", file, dst });
    }
  }
  return routes;
}

/** An address or prefix as a bigint network and length (the bench's own reading, not the code under test's). */
function parseCidr(text, family) {
  const [address, lengthText] = text.split("/");
  const bits = family === 4 ? 32 : 128;
  const length = lengthText === undefined ? bits : Number(lengthText);
  let value = 0n;
  if (family === 4) for (const part of address.split(".")) value = (value << 8n) | BigInt(part);
  else {
    const [head, tail = ""] = rfc5952(`${address}/128`).split("/")[0].split("::");
    const groups = (g) => (g === "" ? [] : g.split(":"));
    const all = [...groups(head), ...Array(8 - groups(head).length - groups(tail).length).fill("0"), ...groups(tail)];
    for (const g of address.includes("::") ? all : address.split(":")) value = (value << 16n) | BigInt(`0x${g}`);
  }
  return { network: value, length, bits };
}

/**
 * Every emitted table's verdict against the reference cover, by longest-prefix match done here:
 * the first and last address of each reference prefix (of every prefix, or of SAMPLE evenly
 * spaced ones) must fall through (throw or no route), the addresses just outside must go through
 * the tunnel unless another reference prefix holds them. Returns the mismatches found.
 */
function verdictMismatches(routes, reference, family, sample = Infinity) {
  // Keyed by the network's hex text, not the bigint: V8 hashes a bigint by its lowest 64 bits only,
  // which are zero for most IPv6 prefixes, so a Map of them is one bucket and fills in quadratic
  // time (20,000 such keys: 1.9 s instead of 6 ms; the 1M IPv6 bench never finished).
  const byLength = new Map();
  for (const r of routes) {
    const { network, length } = parseCidr(r.dst, family);
    if (!byLength.has(length)) byLength.set(length, new Map());
    byLength.get(length).set(network.toString(16), r.kind);
  }
  const bits = family === 4 ? 32 : 128;
  const lengths = [...byLength.keys()].sort((a, b) => b - a).map((length) => ({ length, host: BigInt(bits - length) }));
  const lookup = (address) => {
    for (const { length, host } of lengths) {
      const kind = byLength.get(length).get(((address >> host) << host).toString(16));
      if (kind !== undefined) return kind === "throw" ? "falls through" : kind;
    }
    return "falls through";
  };
  const ranges = reference.map((c) => {
    const { network, length } = parseCidr(c, family);
    return [network, network + (1n << BigInt(bits - length)) - 1n];
  });
  const listed = (address) => {
    let lo = 0;
    let hi = ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (address < ranges[mid][0]) hi = mid - 1;
      else if (address > ranges[mid][1]) lo = mid + 1;
      else return true;
    }
    return false;
  };
  const step = Math.max(1, Math.floor(ranges.length / sample));
  const top = (1n << BigInt(bits)) - 1n;
  let mismatches = 0;
  for (let i = 0; i < ranges.length; i += step) {
    const [first, last] = ranges[i];
    for (const address of [first, last, first - 1n, last + 1n]) {
      if (address < 0n || address > top) continue;
      if (lookup(address) !== (listed(address) ? "falls through" : "tunnel")) mismatches++;
    }
  }
  return mismatches;
}

function bench(dataset) {
  const dir = join(work, dataset.name);
  mkdirSync(dir);
  const list = dataset.lines();
  writeFileSync(join(dir, "list.txt"), list.join("\n") + "\n");
  const spec = join(dir, "spec.toml");
  writeFileSync(
    spec,
    [
      "version = 1",
      "[tunnel]",
      'interface = "wg0"',
      'addresses = ["10.253.0.2/32", "fd00:253::2/128"]',
      "manage = false",
      "[split]",
      "exclude = []",
      'exclude_files = ["list.txt"]',
      "",
    ].join("\n"),
  );
  const out = join(dir, "out");
  const ours = repeat(runs, () => {
    rmSync(out, { recursive: true, force: true });
    return timed(process.execPath, [cli, spec, "-o", out]);
  });
  const emitted = emittedRoutes(out);
  // The plan's note where the tunnel link's limit binds (src/plan.ts, tableRoutes).
  const bound = /: (\d+) routes where (\d+) would do, .* \(this table uses (\d+)\); no table within that limit has fewer than (\d+)$/m.exec(ours.stderr);
  const limited = bound && { routes: Number(bound[1]), unlimited: Number(bound[2]), tunnel: Number(bound[3]), atLeast: Number(bound[4]) };

  const rows = [];
  for (const family of dataset.family === "mixed" ? [4, 6] : [dataset.family]) {
    const part = join(dir, `ipv${family}.txt`);
    const input = list.filter((l) => !l.startsWith("#") && l !== "" && l.includes(":") === (family === 6));
    writeFileSync(part, input.join("\n") + "\n");
    const refOut = join(dir, `reference-${family}.txt`);
    const [tool, command, args] =
      family === 4
        ? ["iprange --optimize", "iprange", ["--optimize", part]]
        : ["Net::CIDR::Lite", "perl", ["-MNet::CIDR::Lite", "-e", PERL_AGGREGATE, part]];
    // Net::CIDR::Lite needs about a minute for a million prefixes: one run is enough there.
    const reference = repeat(input.length >= 1_000_000 && family === 6 ? 1 : runs, () => timed(command, args, refOut));
    // iprange prints a /32 as a bare address; Net::CIDR::Lite also writes "::" for a single zero
    // group, which RFC 5952 forbids: WHATWG URL's serializer gives the RFC 5952 text independently.
    const expected = lines(readFileSync(refOut, "utf8")).map((c) => (family === 4 ? (c.includes("/") ? c : `${c}/32`) : rfc5952(c)));
    // Every prefix of a list up to 100k, 20,000 of larger ones (each probe is a bigint lookup per route length).
    const mismatches = verdictMismatches(emitted[family], expected, family, expected.length > 100_000 ? 20_000 : Infinity);
    const count = (kind) => emitted[family].filter((r) => r.kind === kind).length;
    rows.push({ limited: rows.length === 0 ? limited : undefined, dataset: dataset.name, family, input: input.length, cover: expected.length, output: emitted[family].length, tunnel: count("tunnel"), throws: count("throw"), unreachable: count("unreachable"), ours, tool, reference, identical: mismatches === 0, mismatches });
  }
  return rows;
}

function targets(rows) {
  // A data set's first row is its IPv4 part.
  const find = (name) => rows.find((r) => r.dataset === name);
  const time = (r) => `${fmt(r.ours.wall)} s, ${Math.round(r.ours.rss)} MB`;
  const ratio = (r) => `${fmt(r.output / r.cover)} of ${r.cover}`;
  const checks = [
    ["ipv4-1M", (r) => r.ours.wall < 2 && r.ours.rss < 600, "1M IPv4: < 2 s and < 600 MB", time],
    ["ipv4-100k", (r) => r.ours.wall < 0.5, "100k IPv4: < 0.5 s", time],
    ["ipv6-100k", (r) => r.ours.wall < 0.5, "100k IPv6: < 0.5 s", time],
    ["ipv4-1M", (r) => r.ours.wall <= 2.5 * r.reference.wall, "1M IPv4: within 2.5x of iprange, in the same run", (r) => `${fmt(r.ours.wall / r.reference.wall, 1)}x`],
    ["US", (r) => r.output <= 0.55 * r.cover, "US (real list), IPv4 routes: at most 0.55 of the minimal cover", ratio],
    ["CN", (r) => r.output <= 0.82 * r.cover, "CN (real list), IPv4 routes: at most 0.82 of the minimal cover", ratio],
  ];
  return checks.filter(([name]) => find(name)).map(([name, ok, text, shown]) => `- ${ok(find(name)) ? "met" : "NOT met"}: ${text} (${shown(find(name))})`);
}

const fmt = (x, digits = 2) => x.toFixed(digits);
/** node's own start, the floor under every figure: this machine's speed drifts (up to 2x within minutes). */
const nodeStart = () => repeat(runs, () => timed(process.execPath, ["-e", "0"])).wall;
const loadBefore = loadavg().map((l) => l.toFixed(2)).join(" ");
const nodeStartBefore = nodeStart();
const rows = datasets.flatMap((d) => {
  process.stderr.write(`bench: ${d.name}...\n`);
  return bench(d);
});
const loadAfter = loadavg().map((l) => l.toFixed(2)).join(" ");
const nodeStartAfter = nodeStart();

const table = [
  "| data set | family | input prefixes | minimal cover | emitted routes | through the tunnel / throws / unreachable | ratio to the cover | gen-networkd wall | gen-networkd peak RSS | reference | reference wall | reference peak RSS | ratio (wall) | verdicts = list |",
  "|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|---|",
  ...rows.map((r) =>
    [
      r.dataset,
      `IPv${r.family}`,
      r.input,
      r.cover,
      r.output,
      `${r.tunnel} / ${r.throws} / ${r.unreachable}`,
      fmt(r.output / r.cover, 3),
      `${fmt(r.ours.wall)} s`,
      `${fmt(r.ours.rss, 0)} MB`,
      r.tool,
      `${fmt(r.reference.wall)} s`,
      `${fmt(r.reference.rss, 0)} MB`,
      `${fmt(r.ours.wall / Math.max(r.reference.wall, 0.01), 1)}x`,
      r.identical ? "yes" : `**NO** (${r.mismatches})`,
    ].join(" | ").replace(/^/, "| ").replace(/$/, " |"),
  ),
];

const machine = [
  `- date: ${new Date().toISOString()}`,
  `- machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, ${fmt(totalmem() / 2 ** 30, 1)} GiB RAM, Linux ${release()}`,
  `- Node ${process.version}; ${execFileSync("perl", ["-MNet::CIDR::Lite", "-e", 'print "Net::CIDR::Lite $Net::CIDR::Lite::VERSION"']).toString()}; iprange from Debian's package`,
  `- load average (1, 5, 15 min) before: ${loadBefore}; after: ${loadAfter} (the machine is shared; wall times grow with load)`,
  `- node's own start (\`node -e 0\`, median of ${runs}) before: ${fmt(nodeStartBefore)} s; after: ${fmt(nodeStartAfter)} s (the floor under every wall time, and a gauge of the machine's speed at the time)`,
  `- each figure: median of ${runs} runs (Net::CIDR::Lite on 1M prefixes: 1 run)`,
];

const limits = [
  "## Where the tunnel's link limit binds",
  "",
  "The tunnel's routes (those nested in throws) all live on wg0's one .network, which networkd caps (8,000 kept",
  "here, README: \"How many routes networkd applies\"). Where the cheapest table needs more, the plan prices tunnel",
  "routes until the tables fit and says, in a note, what that cost and a bound no table within the limit beats",
  "(Lagrangian duality over the prices tried):",
  "",
  "| data set | routes emitted | without the limit | through the tunnel | no table within the limit has fewer than | emitted above that bound |",
  "|---|--:|--:|--:|--:|--:|",
  ...rows.filter((r) => r.limited).map((r) => `| ${r.dataset} | ${r.limited.routes} | ${r.limited.unlimited} | ${r.limited.tunnel} | ${r.limited.atLeast} | ${r.limited.routes - r.limited.atLeast} (${fmt((100 * (r.limited.routes - r.limited.atLeast)) / r.limited.atLeast, 1)}%) |`),
  "",
];

const report = [
  "# Benchmark: large prefix lists",
  "",
  "Written by `npm run bench` (bench/run.mjs); regenerate with that command.",
  "",
  ...machine,
  "",
  "## What is measured",
  "",
  "Seeded synthetic lists from `bench/synthetic.mjs`: IPv4 with a BGP-like length mix (mostly /24, a",
  "tail of shorter prefixes, 9% single addresses written bare), IPv6 mostly /32../48 with some /64",
  "and single addresses, and a country-shaped list (8,000 IPv4 prefixes clustered in 40 allocations",
  "plus 2,000 IPv6 prefixes). For each list a spec with `exclude = []` and `exclude_files = [list]`",
  "is generated with the real CLI, so the throws it emits are exactly the list's minimal cover:",
  "",
  "    /usr/bin/time -f '%e s %M KB' node dist/cli.js spec.toml -o out",
  "",
  "That is the whole process: start, load and validate the spec, read and parse the list, merge,",
  "plan, render, write (fsync + rename). The references run on the same list (its IPv4 or IPv6 part):",
  "",
  "    /usr/bin/time -f '%e s %M KB' iprange --optimize list.txt",
  `    /usr/bin/time -f '%e s %M KB' perl -MNet::CIDR::Lite -e '${PERL_AGGREGATE}' list.txt`,
  "",
  "\"minimal cover\" is the reference's output: the fewest CIDR blocks of the list, which is what a table of throws needed",
  "before tables nested. gen-networkd emits the fewest routes under longest-prefix match (src/lpm-table.ts): routes",
  "through wg0 (its .network) and throws on the anchor. \"verdicts = list\" checks the emitted table by longest-prefix",
  "match done in the bench: the first and last address of every reference prefix (20,000 evenly spaced ones for longer",
  "covers) fall through, and the addresses just outside go through the tunnel unless another reference prefix holds them.",
  "",
  "## Results",
  "",
  ...table,
  "",
  ...limits,
  "## Targets",
  "",
  ...targets(rows),
  "",
];

process.stdout.write(`${machine.join("\n")}\n\n${table.join("\n")}\n\n${limits.join("\n")}\n${targets(rows).join("\n")}\n`);
if (!only) {
  // The lab's apply figures (bench/apply-lab.ts) live in the same file; keep them.
  const resultsPath = join(root, "bench/results.md");
  const previous = existsSync(resultsPath) ? readFileSync(resultsPath, "utf8") : "";
  const applySection = previous.indexOf("## Applying large route sets");
  writeFileSync(resultsPath, report.join("\n") + (applySection === -1 ? "" : `\n${previous.slice(applySection)}`));
}
if (rows.some((r) => !r.identical)) process.exitCode = 1;
