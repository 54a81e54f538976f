// explain's model pinned to the kernel. Each spec's files are applied by the real
// networkd in the lab; then, for FLOWS random flows (addresses biased toward the
// boundaries of every prefix in the host's rules and tables, random protocols,
// ports, uids and fwmarks), explain's verdict, interface and table (computed from
// the plan plus the host's `ip -j` state saved to files, as a user would pass them)
// must equal what `ip -j route get DST ipproto P dport N uid U mark M [from SRC]` reports in
// the lab host, for unbound flows and for flows from H's own LAN and tunnel addresses. Any disagreement is a bug in our model or in our files.
//
// `ip route get` sends no packet, so any address is fine in these queries.
// GEN_NETWORKD_LAB_SEED=N replays a run; the seed is printed with every failure.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { labSuite, labUnavailable } from "./harness.js";
import { CLI, ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { ADDR } from "./lab.js";
import { CommandError, run } from "./proc.js";
import { routesFromText, rulesFromText } from "../../src/host-state.js";
import { AddressSet, containsAddress, formatAddress, parseAddress, type Family, type Prefix } from "../../src/prefix.js";
import { prefixOf } from "../prefix-of.js";
// The seeded generator the benchmark uses too, so a failing run can be replayed.
import { random } from "../../bench/synthetic.mjs";

const FLOWS = Number(process.env.GEN_NETWORKD_EXPLAIN_FLOWS ?? 1000);
/** Forwarded flows per spec, on top: arriving on H's LAN link from the LAN host, with forwarding on. */
const FORWARDED = Math.ceil(FLOWS / 5);
const SEED = Number(process.env.GEN_NETWORKD_LAB_SEED ?? Date.now() % 2 ** 31);

/**
 * A list-heavy exclusion whose fewest routes nest, in both families: 60 IPv4 /14s and 60 IPv6 /28s,
 * each excluded but for a hole (the minimal cover of the rest, about 1,700 prefixes), so the table
 * holds a throw per block with the hole through the tunnel inside it.
 */
function nestedExclusions(): string[] {
  const allBut = (block: string, hole: string) => AddressSet.of([prefixOf(block)]).minus(AddressSet.of([prefixOf(hole)])).cidrs();
  const hex = (n: number) => n.toString(16);
  return Array.from({ length: 60 }, (_, i) => [
    ...allBut(`44.${4 * i}.0.0/14`, `44.${4 * i + (i % 4)}.${16 * (i % 16)}.0/20`),
    ...allBut(`2a02:${hex(i * 16)}0::/28`, `2a02:${hex(i * 256 + (i % 16))}:${hex(((i * 37) % 256) * 256)}::/40`),
  ]).flat();
}
const nestedSpec = (killswitch: boolean) => ({
  version: 1,
  tunnel: { interface: "wg0", addresses: ["10.253.0.2/24", "fd00:253::2/64"], peers: [{ allowed_ips: ["0.0.0.0/0", "::/0"] }] },
  split: { exclude: ["@local", ...nestedExclusions()], killswitch, ipv6: "tunnel" },
});

/**
 * The specs pinned: every example, one with direct_connected off, a custom exclusion and IPv6 left
 * alone, and the nested list-heavy exclusion with the kill switch off and on.
 */
const SPECS: { tag: string; raw: () => Promise<Record<string, any>> }[] = [
  ...["seed.toml", "laptop.toml", "per-user.toml", "unmanaged.toml"].map((name) => ({
    tag: `x${name.slice(0, 6).replace(/[^a-z]/g, "")}`,
    raw: () => readSpec(join(ROOT, "examples", name)),
  })),
  {
    tag: "xplain",
    raw: async () => ({
      version: 1,
      tunnel: { interface: "wg0", addresses: ["10.253.0.2/24", "fd00:253::2/64"], peers: [{ allowed_ips: ["0.0.0.0/0", "::/0"] }] },
      split: { table: 300, priority: 30000, exclude: ["@rfc1918", "203.0.113.0/25", "2001:db8:99::/48"], direct_connected: false, ipv6: "direct" },
    }),
  },
  { tag: "xnest", raw: async () => nestedSpec(false) },
  { tag: "xnestks", raw: async () => nestedSpec(true) },
];

interface Sample {
  /** Arrived on lan0 from the LAN host (forwarded), instead of locally generated. */
  forwardedFrom?: string;
  /** Locally generated from a socket bound to this address of H's (or a reply from it); unbound when absent. */
  boundFrom?: string;
  family: Family;
  dst: string;
  proto: "tcp" | "udp" | "icmp" | "ipv6-icmp";
  dport?: number;
  /** Of a bound source: 0 for a connecting socket before it has a port, else a reply's (listening) port. */
  sport?: number;
  uid: number;
  mark: number;
}

function sampler(rand: () => number, boundaries: Prefix[], ports: number[], uids: number[], marks: number[]) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const bits = (n: number) => {
    let value = 0n;
    for (let i = 0; i < n; i += 16) value = (value << 16n) | BigInt(Math.floor(rand() * 65536));
    return value & ((1n << BigInt(n)) - 1n);
  };
  const address = (): { family: Family; value: bigint } => {
    if (rand() < 0.75 && boundaries.length) {
      // Near a prefix boundary: its first or last address, or just outside either.
      const p = pick(boundaries);
      const size = 1n << BigInt((p.family === 4 ? 32 : 128) - p.length);
      const max = (1n << BigInt(p.family === 4 ? 32 : 128)) - 1n;
      const candidates = [p.network, p.network + 1n, p.network - 1n, p.network + size - 1n, p.network + size, p.network + size - 2n, p.network + bits(8) % size];
      const value = pick(candidates);
      return { family: p.family, value: value < 0n ? 0n : value > max ? max : value };
    }
    const family: Family = rand() < 0.5 ? 4 : 6;
    return { family, value: bits(family === 4 ? 32 : 128) };
  };
  return (): Sample => {
    const { family, value } = address();
    const roll = rand();
    const proto = roll < 0.45 ? "tcp" : roll < 0.9 ? "udp" : family === 4 ? "icmp" : "ipv6-icmp";
    const sample: Sample = { family, dst: formatAddress(family, value), proto, uid: rand() < 0.5 ? 0 : pick(uids), mark: rand() < 0.85 ? 0 : pick(marks) };
    if (proto === "tcp" || proto === "udp") sample.dport = rand() < 0.5 ? pick(ports) : Math.floor(rand() * 65536);
    return sample;
  };
}

function flowWords(s: Sample): string[] {
  const target = s.dport === undefined ? s.dst : s.family === 6 ? `[${s.dst}]:${s.dport}` : `${s.dst}:${s.dport}`;
  const words = [`${s.proto}:${target}`, `mark=${s.mark}`];
  if (s.forwardedFrom) return [...words, "iif=lan0", `from=${s.forwardedFrom}`];
  return [...words, `uid=${s.uid}`, ...(s.boundFrom ? [`from=${s.boundFrom}`] : []), ...(s.sport ? [`sport=${s.sport}`] : [])];
}

/** `ip route get` for a sample, as H's kernel answers it. */
async function kernelAnswer(c: SplitCase, s: Sample): Promise<string> {
  const args = ["-n", c.lab.ns.H, "-j", "route", "get", s.dst, "ipproto", s.proto, "mark", String(s.mark)];
  if (s.dport !== undefined) args.push("dport", String(s.dport));
  if (s.sport) args.push("sport", String(s.sport));
  args.push(...(s.forwardedFrom ? ["from", s.forwardedFrom, "iif", "lan0"] : ["uid", String(s.uid), ...(s.boundFrom ? ["from", s.boundFrom] : [])]));
  let raw: { type?: string; dev?: string; table?: string };
  try {
    raw = JSON.parse((await run(["ip", ...args])).stdout)[0];
  } catch (error) {
    if (error instanceof CommandError) return "unreachable";
    throw error;
  }
  if (raw.type === "unreachable" || raw.type === "blackhole" || raw.type === "prohibit") return "unreachable";
  // As the lab classifies it: local-table answers (own addresses, broadcast, IPv6 multicast) are direct.
  const verdict = raw.table !== "local" && raw.dev === c.spec.iface ? "tunnel" : "direct";
  return `${verdict} ${raw.dev} ${raw.table ?? "main"}`;
}

/**
 * Destinations the kernel refuses to forward before any policy lookup (martians:
 * loopback, "this network", multicast, link-local, broadcast). explain does not model
 * those checks, so forwarded samples avoid them.
 */
const NOT_FORWARDED = ["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3", "255.255.255.255/32", "::/127", "::ffff:0:0/96", "fe80::/10", "ff00::/8"].map(prefixOf);

interface Pinned {
  c: SplitCase;
  compared: number;
  /** How many of the local flows came from a bound source. */
  bound: number;
  mismatches: string[];
}

async function pin(tag: string, raw: Record<string, any>): Promise<Pinned> {
  const c = await SplitCase.applied(tag, raw);
  try {
    const H = c.lab.ns.H;
    // H forwards, as a router or VPN gateway would, for the forwarded flows. (Before the state is
    // saved: with forwarding on, the kernel adds IPv6 subnet-router anycast routes.)
    await run(["ip", "netns", "exec", H, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    // The host's state, saved exactly as the docs tell users to (numeric tables).
    const [rules4, rules6, routes] = await Promise.all([
      run(["ip", "-n", H, "-4", "-N", "-j", "rule"]),
      run(["ip", "-n", H, "-6", "-N", "-j", "rule"]),
      run(["ip", "-n", H, "-N", "-j", "route", "show", "table", "all"]),
    ]);
    const rulesFile = join(c.lab.work, "rules.json");
    const routesFile = join(c.lab.work, "routes.json");
    await writeFile(rulesFile, rules4.stdout + rules6.stdout);
    await writeFile(routesFile, routes.stdout);

    // Boundaries of every prefix the host uses; ports, uids and marks its rules select.
    const hostRules = rulesFromText(rules4.stdout + rules6.stdout, rulesFile);
    const boundaries = [
      ...hostRules.flatMap((r) => [r.from, r.to].filter((p): p is Prefix => p !== undefined)),
      ...routesFromText(routes.stdout, routesFile).map((r) => r.dst),
    ];
    const around = (values: number[]) => [...new Set(values.flatMap((v) => [v - 1, v, v + 1]).filter((v) => v >= 0))];
    const ports = around([0, 53, 80, 443, ...hostRules.flatMap((r) => [r.dport?.start, r.dport?.end].filter((v): v is number => v !== undefined))]);
    const uids = around([995, 1000, 65534, ...hostRules.flatMap((r) => [r.uid?.start, r.uid?.end].filter((v): v is number => v !== undefined && v < 4294967295))]);
    const marks = [1, 0xca6c, 10086, ...hostRules.flatMap((r) => (r.fwmark ? [r.fwmark.value] : []))];
    const next = sampler(random(SEED ^ tag.length * 7919), boundaries, ports, uids, marks);
    // A third of the local flows come from a bound source (H's LAN or tunnel address of the flow's
    // family), as a socket bound to it or a reply sent from it: the lookups split.inbound sorts.
    const ownAddresses = [ADDR.hostLan4, ADDR.hostLan6, ...c.spec.addresses.map((a) => a.split("/")[0]!)];
    // Half of those carry a source port (a reply from a listening port; the rules for blocked
    // IPv6 tell replies from connects by it), at the edges of what a rule can name.
    const sourcePorts = [1, 22, 2222, 40000, 65534, 65535];
    const bind = (sample: Sample, roll: number): Sample => {
      const mine = ownAddresses.filter((a) => a.includes(":") === (sample.family === 6));
      if (roll >= 1 / 3) return sample;
      const bound = { ...sample, boundFrom: mine[Math.floor(roll * 3 * mine.length)]! };
      const ported = sample.dport !== undefined && Math.floor(roll * 3 * 64) % 2 === 1;
      return ported ? { ...bound, sport: sourcePorts[Math.floor(roll * 3 * 64 * sourcePorts.length) % sourcePorts.length]! } : bound;
    };
    const rollBound = random(SEED ^ 0x5eed);
    const samples = Array.from({ length: FLOWS }, () => bind(next(), rollBound()));
    // Forwarded flows come from the LAN host.
    while (samples.length < FLOWS + FORWARDED) {
      const sample = next();
      const value = parseAddress(sample.dst);
      if (!value.ok || NOT_FORWARDED.some((p) => containsAddress(p, value.value.family, value.value.value))) continue;
      samples.push({ ...sample, uid: 0, forwardedFrom: sample.family === 4 ? ADDR.lanHost4 : ADDR.lanHost6 });
    }

    const { stdout } = await run([process.execPath, CLI, "explain", c.specPath, "--json", "--rules", rulesFile, "--routes", routesFile, ...samples.flatMap(flowWords)], { timeoutMs: 120_000 });
    const explained = JSON.parse(stdout) as { verdict: string; interface: string | null; table: string | null }[];
    assert.is(explained.length, samples.length, "explain answered every flow");
    // Run on the host itself, explain reads the same state live: same answers.
    const live = await run(["ip", "netns", "exec", H, process.execPath, CLI, "explain", c.specPath, "--json", ...samples.slice(0, 200).flatMap(flowWords)], { timeoutMs: 120_000 });
    assert.equal(JSON.parse(live.stdout), explained.slice(0, 200), "explain on the host (live state) = explain with the host's state from files");

    const mismatches: string[] = [];
    const queue = samples.map((s, i) => ({ s, i }));
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let item = queue.shift(); item; item = queue.shift()) {
          const { s, i } = item;
          const theirs = await kernelAnswer(c, s);
          const ours = explained[i]!;
          // The kernel names no table for main (nor for 0.0.0.0, which it answers before any rule).
          const mine = ours.verdict === "unreachable" ? "unreachable" : `${ours.verdict} ${ours.interface} ${ours.table ?? "main"}`;
          if (theirs !== mine) mismatches.push(`${flowWords(s).join(" ")}: kernel ${theirs}, explain ${mine}`);
        }
      }),
    );
    return { c, compared: samples.length, bound: samples.filter((s) => s.boundFrom).length, mismatches };
  } catch (error) {
    await c.destroy();
    throw error;
  }
}

const pending = new Map<string, Promise<Pinned>>();
const start = (spec: (typeof SPECS)[number]) => {
  if (!pending.has(spec.tag)) pending.set(spec.tag, spec.raw().then((raw) => pin(spec.tag, raw)));
  return pending.get(spec.tag)!;
};
// Two at a time: each case is a whole lab with networkd and two wireguard-go.
if (!labUnavailable()) {
  void (async () => {
    for (let i = 0; i < SPECS.length; i += 2) await Promise.allSettled(SPECS.slice(i, i + 2).map(start));
  })();
}

for (const spec of SPECS) {
  const t = labSuite(`lab: explain = kernel (${spec.tag})`, () => start(spec), async (p) => p.c.destroy());
  t.test(`explain's verdict, interface and table equal ip route get's for ${FLOWS} local and ${FORWARDED} forwarded random flows`, (p) => {
    console.log(`explain vs kernel (${spec.tag}): ${p.compared} flows compared (${p.bound} from a bound source), ${p.mismatches.length} disagreements (seed ${SEED})`);
    assert.equal(p.mismatches.slice(0, 20), [], `seed ${SEED}: ${p.mismatches.length} of ${p.compared} flows disagree`);
  });
  t.run();
}
