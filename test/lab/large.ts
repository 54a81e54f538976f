// Applying a spec with a long prefix list in the lab, timed: shared by the large-list lab
// test and the apply bench (bench/apply-lab.ts). The lab's general checks compare lists
// pairwise; here the kernel's table is compared with the plan as sets, per family.
import { readFile } from "node:fs/promises";
import { parseUnitFile } from "../../src/unitfile.js";
import type { SplitCase } from "./case.js";
import { addressesOf } from "./expect.js";
import { publicKey, wireguardFromNetdev } from "./lab.js";
import { poll } from "./proc.js";

/** What networkd says when it drops routes or fails a link: never expected from our files. */
export const DROPPED_OR_FAILED = /Failed to allocate route|Argument list too long|Numerical result out of range|: Failed$|Could not set route|Failed to configure route/;

export interface LargeApply {
  /** From starting networkd until it reported every link configured. */
  configuredMs: number;
  /** From starting networkd until the kernel held every planned route. */
  kernelMs: number;
  /** Planned routes per family (table routes, main's own left out). */
  planned: { ipv4: number; ipv6: number };
}

/** A canonical route ("table T ipv4 throw 10.0.0.0/8", expect.ts) names its family third. */
const familyOf = (canonical: string): "ipv4" | "ipv6" => (canonical.split(" ")[2] === "ipv6" ? "ipv6" : "ipv4");

/** A prefix list of V4 IPv4 /24s from 1.0.0.0 on and V6 IPv6 /48s from 2a00:0:1::/48 on, no two adjacent (nothing merges). */
export function disjointLines(v4: number, v6: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < v4; i++) {
    const n = 0x01000000 + i * 512;
    lines.push(`${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.0/24`);
  }
  for (let i = 0; i < v6; i++) lines.push(`2a00:${(2 * i).toString(16)}:1::/48`);
  return lines;
}

export function countByFamily(routes: readonly string[]): { ipv4: number; ipv6: number } {
  const counts = { ipv4: 0, ipv6: 0 };
  for (const r of routes) counts[familyOf(r)]++;
  return counts;
}

/** Routes in one list and not the other, at most LIMIT of each, for messages. */
export function setDifference(planned: readonly string[], kernel: readonly string[], limit = 10): string {
  const have = new Set(kernel);
  const want = new Set(planned);
  const missing = planned.filter((r) => !have.has(r));
  const extra = kernel.filter((r) => !want.has(r));
  return `${missing.length} missing (${missing.slice(0, limit).join("; ")}), ${extra.length} not planned (${extra.slice(0, limit).join("; ")})`;
}

/**
 * Starts networkd on the generated files (the tunnel made as SplitCase.apply does) and waits,
 * up to LIMIT_MS, until every link is configured and the kernel's tables hold exactly the
 * planned routes. Throws with the difference and networkd's log when they never do.
 */
export async function applyLarge(c: SplitCase, limitMs: number): Promise<LargeApply> {
  const netdevText = (await c.wireguardNetdev())!;
  const config = wireguardFromNetdev(parseUnitFile(netdevText));
  await c.lab.admitHost(await publicKey((await readFile(config.privateKeyFile, "utf8")).trim()), addressesOf(await c.tunnelNetwork()));
  const plan = await c.plannedState();
  const started = Date.now();
  await c.lab.startNetworkd(limitMs);
  await c.lab.waitConfigured(["lan0"], limitMs);
  await c.lab.startHostWireguard(netdevText);
  await c.lab.waitConfigured(await c.links(), limitMs);
  const configuredMs = Date.now() - started;
  const want = new Set(plan.routes);
  let last = { routes: [] as string[] };
  await poll(
    "the kernel to hold exactly the planned routes",
    async () => {
      last = await c.kernelState(plan.tables);
      return last.routes.length === want.size && last.routes.every((r) => want.has(r)) ? true : undefined;
    },
    { timeoutMs: limitMs, intervalMs: 2000, describe: async () => `${setDifference(plan.routes, last.routes)}\nnetworkd:\n${c.lab.networkd?.tail()}` },
  );
  return { configuredMs, kernelMs: Date.now() - started, planned: countByFamily(plan.routes) };
}
