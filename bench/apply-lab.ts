// How long the real systemd-networkd takes to apply a large exclusion list, in
// the namespace lab (test/lab/), on each networkd version the lab runs: for
// N = 1k, 10k, 50k excluded prefixes, the time from starting networkd until the
// kernel holds every throw of table 10086 and the split's rule, plus the time until
// networkd calls every link configured. A version that leaves throws out is
// reported with the count it reached.
//
//   npm run build && node --import tsx bench/apply-lab.ts [N ...]
//   GEN_NETWORKD_LAB_SYSTEMDS=sid node --import tsx bench/apply-lab.ts 10000   # one version
//
// The list is N non-adjacent /24s (so exactly N throws), IPv4 only (ipv6 =
// "direct"), nothing else excluded. The figures replace the "Applying large
// route sets" section of bench/results.md (needs root, the lab's tools and the
// chroots of test/lab/build-roots.sh).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseUnitFile } from "../src/unitfile.js";
import { SplitCase } from "../test/lab/case.js";
import { addressesOf } from "../test/lab/expect.js";
import { labUnavailable } from "../test/lab/harness.js";
import { labSystemd, labSystemdUnavailable, SYSTEMD_NAMES, type LabSystemd, type SystemdName } from "../test/lab/systemd.js";
import { publicKey, wireguardFromNetdev } from "../test/lab/lab.js";
import { poll } from "../test/lab/proc.js";

const TABLE = 10086;
const sizes = process.argv.slice(2).map(Number);
const counts = sizes.length > 0 ? sizes : [1_000, 10_000, 50_000];
const LIMIT_MS = 5 * 60_000;

/** After networkd calls every link configured, how long a table that is still short of N may stay unchanged before the count is taken as final. */
const SETTLE_MS = 5000;

const unavailable = labUnavailable();
if (unavailable) {
  console.error(`apply bench needs the lab: ${unavailable}`);
  process.exit(1);
}
const names = (process.env.GEN_NETWORKD_LAB_SYSTEMDS ?? SYSTEMD_NAMES.join(",")).split(",").map((n) => n.trim()).filter(Boolean) as SystemdName[];
const systemds: LabSystemd[] = names.map((name) => {
  process.env.GEN_NETWORKD_LAB_SYSTEMD = name;
  const reason = labSystemdUnavailable();
  if (reason) {
    console.error(`apply bench: ${reason}`);
    process.exit(1);
  }
  return labSystemd();
});

/** N /24s with a gap between each two: 1.0.0.0/24, 1.0.2.0/24, ... */
function disjointList(n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const network = 0x01000000 + i * 512;
    lines.push(`${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.0/24`);
  }
  return lines.join("\n") + "\n";
}

interface Measurement {
  systemd: LabSystemd;
  n: number;
  configuredMs: number;
  /** Until the kernel held all N throws and the rule, or (routes < n) until the count stopped growing. */
  kernelMs: number;
  routes: number;
}

async function measure(systemd: LabSystemd, n: number): Promise<Measurement> {
  process.env.GEN_NETWORKD_LAB_SYSTEMD = systemd.name;
  const c = await SplitCase.create(`apply${n}`);
  try {
    const listPath = join(c.lab.work, "excluded.txt");
    await writeFile(listPath, disjointList(n));
    await c.generate({
      version: 1,
      tunnel: { interface: "wg0", addresses: ["10.253.0.2/32"] },
      split: { protocols: ["tcp"], exclude: [], exclude_files: [listPath], ipv6: "direct" },
    });
    // SplitCase.apply() with timeouts long enough for big tables, and the times split up.
    const netdevText = (await c.wireguardNetdev())!;
    const config = wireguardFromNetdev(parseUnitFile(netdevText));
    await c.lab.admitHost(await publicKey((await readFile(config.privateKeyFile, "utf8")).trim()), addressesOf(await c.tunnelNetwork()));
    const started = Date.now();
    await c.lab.startNetworkd();
    await c.lab.waitConfigured(["lan0"], LIMIT_MS);
    await c.lab.startHostWireguard(netdevText);
    await c.lab.waitConfigured(await c.links(), LIMIT_MS);
    const configuredMs = Date.now() - started;
    let last = { count: -1, since: Date.now() };
    const routes = await poll(
      `${n} throws and the rule in the kernel`,
      async () => {
        const throws = (await c.lab.routes(TABLE, "ipv4")).filter((r) => r.type === "throw").length;
        const rule = (await c.lab.rules()).some((r) => String(r.table) === String(TABLE));
        if (throws === n && rule) return throws;
        if (throws !== last.count) last = { count: throws, since: Date.now() };
        // networkd is done and the table stopped growing: it left the rest out.
        return Date.now() - last.since > SETTLE_MS ? throws : undefined;
      },
      { timeoutMs: LIMIT_MS, intervalMs: 200 },
    );
    const kernelMs = (routes === n ? Date.now() : last.since) - started;
    return { systemd, n, configuredMs, kernelMs, routes };
  } finally {
    await c.destroy();
  }
}

const results: Measurement[] = [];
for (const systemd of systemds) {
  for (const n of counts) {
    process.stderr.write(`apply bench: networkd ${systemd.version} (${systemd.name}), ${n} throws...\n`);
    const r = await measure(systemd, n);
    results.push(r);
    const kernel = r.routes === n ? `all in the kernel with the rule after ${seconds(r.kernelMs)}` : `only ${r.routes} of ${n} in the kernel (no more after ${seconds(r.kernelMs)})`;
    console.log(`networkd ${systemd.version}: ${n} throws: ${kernel}; links configured after ${seconds(r.configuredMs)}`);
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

const largest = results.filter((r) => r.n === Math.max(...counts) && r.routes === r.n);
const section = [
  "## Applying large route sets (namespace lab, real networkd)",
  "",
  `Measured ${new Date().toISOString()} with \`npm run build && node --import tsx bench/apply-lab.ts ${counts.join(" ")}\`,`,
  `on networkd ${systemds.map((s) => `${s.release} (${s.name})`).join(", ")} in the lab's host namespace, kernel ${execFileSync("uname", ["-r"], { encoding: "utf8" }).trim()};`,
  `the list is N non-adjacent /24s, so table ${TABLE} should get exactly N throws.`,
  "Times are from starting networkd until the kernel holds all N throws and the rule, and until networkd reports every link configured.",
  "",
  "| networkd | throws | all throws + rule in the kernel | links configured (networkd) |",
  "|:--|--:|--:|--:|",
  ...results.map(
    (r) =>
      `| ${r.systemd.version} (${r.systemd.name}) | ${r.n} | ${r.routes === r.n ? seconds(r.kernelMs) : `**${r.routes} of ${r.n}** (no more after ${seconds(r.kernelMs)})`} | ${seconds(r.configuredMs)} |`,
  ),
  "",
  ...largest.map((r) => `Per throw at ${r.n} on ${r.systemd.version}: ${((r.kernelMs * 1000) / r.n).toFixed(0)} µs.`),
  "A version that stops short of N drops the rest (networkd's per-.network route cap; see issue 11); the",
  "links still report configured.",
  "Upstream reports of networkd struggling with many routes (systemd#27353: about 12,500 static routes on",
  "v253 gave 100% CPU and \"Connection timed out\"; systemd#20718 and #14857: restarts with large foreign",
  "tables, e.g. a full BGP table) did not reproduce here up to 50,000 routes; for hosts that also",
  "carry a large foreign table the maintainers' advice there is `ManageForeignRoutes=no` in networkd.conf.",
  "One `[Route]` per prefix stays the emission: it is the native form, and networkd has no batched one.",
  "",
];

const resultsPath = new URL("./results.md", import.meta.url).pathname;
const current = existsSync(resultsPath) ? readFileSync(resultsPath, "utf8") : "";
const start = current.indexOf("## Applying large route sets");
const kept = start === -1 ? (current === "" ? "" : current.trimEnd() + "\n\n") : current.slice(0, start);
writeFileSync(resultsPath, kept + section.join("\n"));
