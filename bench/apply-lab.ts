// How long the real systemd-networkd takes to apply long prefix lists, in the namespace
// lab (test/lab/), on each networkd version the lab runs: the time from starting networkd
// until every link is configured and until the kernel's table 10086 holds exactly the
// planned routes (test/lab/large.ts). A version that does not apply a list is reported with
// what networkd said.
//
//   npm run build && node --import tsx bench/apply-lab.ts [DATA SET ...]
//   GEN_NETWORKD_LAB_SYSTEMDS=sid node --import tsx bench/apply-lab.ts 20k   # one version
//
// Data sets: "20k" (12,000 non-adjacent IPv4 /24s and 8,000 IPv6 /48s), "1M" (the bench's
// 1M-prefix synthetic IPv4 list, bench/synthetic.mjs: 409,090 prefixes once merged) and "US"
// (the real US list from geoip-country, bench/geoip-lists.ts), each excluded with @local
// from a tunnel with both families. The figures replace the "Applying large route sets"
// section of bench/results.md (needs root, the lab's tools and the chroots of
// test/lab/build-roots.sh).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { SplitCase } from "../test/lab/case.js";
import { labUnavailable } from "../test/lab/harness.js";
import { applyLarge, disjointLines, DROPPED_OR_FAILED } from "../test/lab/large.js";
import { labSystemd, labSystemdUnavailable, SYSTEMD_NAMES, type LabSystemd, type SystemdName } from "../test/lab/systemd.js";
import { BATCHING_NETWORKD, ROUTES_AT_ONCE_OLD_NETWORKD } from "../src/plan.js";
import { countryLists } from "./geoip-lists.js";
import { ipv4List } from "./synthetic.mjs";

const LIMIT_MS = 10 * 60_000;
const LOAD_BEFORE = loadavg()[0]!.toFixed(2);

const unavailable = labUnavailable();
if (unavailable) {
  console.error(`apply bench needs the lab: ${unavailable}`);
  process.exit(1);
}
const versionNames = (process.env.GEN_NETWORKD_LAB_SYSTEMDS ?? SYSTEMD_NAMES.join(",")).split(",").map((n) => n.trim()).filter(Boolean) as SystemdName[];
const systemds: LabSystemd[] = versionNames.map((name) => {
  process.env.GEN_NETWORKD_LAB_SYSTEMD = name;
  const reason = labSystemdUnavailable();
  if (reason) {
    console.error(`apply bench: ${reason}`);
    process.exit(1);
  }
  return labSystemd();
});


const DATA_SETS: Record<string, { describe: string; lines: () => string[] }> = {
  "20k": { describe: "12,000 IPv4 /24s + 8,000 IPv6 /48s, non-adjacent", lines: () => disjointLines(12_000, 8_000) },
  "1M": { describe: "bench/synthetic.mjs ipv4List(1,000,000, 4)", lines: () => ipv4List(1_000_000, 4) },
  US: { describe: "the US list from geoip-country", lines: () => countryLists(["US"])[0]!.text.split("\n") },
};

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(DATA_SETS);
for (const name of names) if (!DATA_SETS[name]) throw new Error(`unknown data set ${name}; known: ${Object.keys(DATA_SETS).join(", ")}`);

interface Row {
  systemd: LabSystemd;
  name: string;
  routes: string;
  anchors: number;
  kernel: string;
  configured: string;
}

async function measure(systemd: LabSystemd, name: string): Promise<Row> {
  process.env.GEN_NETWORKD_LAB_SYSTEMD = systemd.name;
  const c = await SplitCase.create(`apply${name}`);
  try {
    const listPath = join(c.lab.work, "list.txt");
    await writeFile(listPath, DATA_SETS[name]!.lines().join("\n") + "\n");
    await c.generate({
      version: 1,
      tunnel: { interface: "wg0", addresses: ["10.253.0.2/32", "fd00:253::2/128"] },
      split: { protocols: ["tcp"], exclude: ["@local"], exclude_files: [listPath] },
    });
    const anchors = (await c.links()).filter((l) => l.startsWith("wg0-split")).length;
    const planned = (await c.plannedState()).routes.length;
    if (systemd.version < BATCHING_NETWORKD && planned > ROUTES_AT_ONCE_OLD_NETWORKD) {
      // What `gen-networkd apply` does there: refuse before writing (this networkd would fail the links).
      return { systemd, name, routes: `${planned}`, anchors, kernel: `not attempted: \`apply\` refuses more than ${ROUTES_AT_ONCE_OLD_NETWORKD.toLocaleString("en")} routes on networkd < ${BATCHING_NETWORKD}`, configured: "-" };
    }
    const started = Date.now();
    try {
      const applied = await applyLarge(c, LIMIT_MS);
      const dropped = (c.lab.networkd?.lines ?? []).find((l) => DROPPED_OR_FAILED.test(l));
      if (dropped) throw new Error(dropped);
      const { ipv4, ipv6 } = applied.planned;
      return { systemd, name, routes: `${ipv4} + ${ipv6}`, anchors, kernel: seconds(applied.kernelMs), configured: seconds(applied.configuredMs) };
    } catch (error) {
      const said = (c.lab.networkd?.lines ?? []).find((l) => DROPPED_OR_FAILED.test(l)) ?? (error as Error).message.split("\n")[0]!;
      return { systemd, name, routes: `${planned}`, anchors, kernel: `**not applied**: ${said.replace(/\|/g, "/")} (after ${seconds(Date.now() - started)})`, configured: "-" };
    }
  } finally {
    await c.destroy();
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

const rows: Row[] = [];
for (const systemd of systemds) {
  for (const name of names) {
    process.stderr.write(`apply bench: networkd ${systemd.version} (${systemd.name}), ${name}...\n`);
    const r = await measure(systemd, name);
    rows.push(r);
    console.log(`networkd ${systemd.version}: ${r.name}: ${r.routes} routes over ${r.anchors} anchors: kernel ${r.kernel}; links configured ${r.configured}`);
  }
}

const section = [
  "## Applying large route sets (namespace lab, real networkd)",
  "",
  `Measured ${new Date().toISOString()} with \`npm run build && node --import tsx bench/apply-lab.ts ${names.join(" ")}\`,`,
  `on networkd ${systemds.map((s) => `${s.release} (${s.name})`).join(", ")} in the lab's host namespace (default sysctls), kernel ${execFileSync("uname", ["-r"], { encoding: "utf8" }).trim()}.`,
  "Each spec excludes the list and @local from a tunnel with both families; the routes are spread over anchors of at most",
  "8,000 (README: \"How many routes networkd applies\"). Times are from starting networkd until it reports every link configured,",
  "and until the kernel's table 10086 holds exactly the planned routes (compared as sets).",
  "",
  "| networkd | data set | planned routes (IPv4 + IPv6) | anchors | kernel holds the plan | links configured |",
  "|:--|:--|--:|--:|--:|--:|",
  ...rows.map((r) => `| ${r.systemd.version} (${r.systemd.name}) | ${r.name}: ${DATA_SETS[r.name]!.describe} | ${r.routes} | ${r.anchors} | ${r.kernel} | ${r.configured} |`),
  "",
  "networkd 252 sends every request at once and fails links past 65,535 outstanding netlink replies, so it cannot apply",
  "the two large lists in any file layout (measured: 100,000 throws failed the link; the US list failed the tunnel link after",
  "9.5 CPU-minutes); 257 and later send 128 at a time.",
  `Load average (1 min) before and after: ${LOAD_BEFORE} and ${loadavg()[0]!.toFixed(2)}; the times grow with load.`,
  "",
];

const resultsPath = new URL("./results.md", import.meta.url).pathname;
const current = existsSync(resultsPath) ? readFileSync(resultsPath, "utf8") : "";
const start = current.indexOf("## Applying large route sets");
const kept = start === -1 ? (current === "" ? "" : current.trimEnd() + "\n\n") : current.slice(0, start);
writeFileSync(resultsPath, kept + section.join("\n"));
