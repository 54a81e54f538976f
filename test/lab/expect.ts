// What the lab expects, worked out independently of the generator's planning.
//
// - The verdict oracle: from the spec alone (the contract in issue 2: named sets,
//   exclusions, protocols, the IPv6 policy, direct_connected), which path a flow
//   from the lab host should take. Deliberately a second implementation of the routing
//   decisions (it shares only the address parser and the named-set table): the lab
//   compares the kernel with this, not with the generator's own reasoning.
// - The blog oracle: what the blog's five `ip` commands do.
// - The planned kernel state: the rules and routes a generated .network asks for,
//   in the canonical form the lab also reduces `ip -j rule` / `ip -j route` to.

import TOML from "@iarna/toml";
import { readFile } from "node:fs/promises";
import type { Section } from "../../src/model.js";
import { namedSet, namedSetNames } from "../../src/named-sets.js";
import { formatAddress, parseAddress as parseProjectAddress } from "../../src/prefix.js";
import { ADDR } from "./lab.js";

// ------------------------------------------------------------------ addresses

export interface Prefix {
  family: 4 | 6;
  /** The network address as a number. */
  net: bigint;
  len: number;
  text: string;
}

/** An address as a family and a number (the project's strict parser: the lab checks routing, not parsing). */
export function parseAddress(text: string): { family: 4 | 6; value: bigint } {
  const parsed = parseProjectAddress(text);
  if (!parsed.ok) throw new Error(`not an IP address: ${text}`);
  return parsed.value;
}

export function parsePrefix(text: string): Prefix {
  const [addr, lenText] = text.split("/");
  const { family, value } = parseAddress(addr!);
  const bits = family === 4 ? 32 : 128;
  const len = lenText === undefined ? bits : Number(lenText);
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
  return { family, net: value & mask, len, text: `${formatAddress(family, value & mask)}/${len}` };
}

export function contains(prefix: Prefix, address: string): boolean {
  const { family, value } = parseAddress(address);
  if (family !== prefix.family) return false;
  const bits = family === 4 ? 32 : 128;
  return value >> BigInt(bits - prefix.len) === prefix.net >> BigInt(bits - prefix.len);
}

export function firstAndLast(prefix: Prefix): [string, string] {
  const bits = prefix.family === 4 ? 32 : 128;
  const size = 1n << BigInt(bits - prefix.len);
  const first = prefix.len >= bits - 1 ? prefix.net : prefix.net + 1n;
  return [formatAddress(prefix.family, first), formatAddress(prefix.family, prefix.net + size - 1n)];
}

// ------------------------------------------------------------------ the spec

/** The named sets as the spec defines them, "@local" included. */
export const NAMED_SETS: Record<string, readonly string[]> = Object.fromEntries(namedSetNames().map((name) => [name, namedSet(name)!]));

/** A uid or port selection: single values and inclusive ranges. */
export type Ranges = [number, number][];

function ranges(list: (number | string)[] | undefined): Ranges | undefined {
  if (!list) return undefined;
  return list.map((v) => {
    const [a, b] = String(v).split("-").map((x) => Number(x.trim()));
    return [a!, b ?? a!];
  });
}

export const inRanges = (r: Ranges, n: number) => r.some(([a, b]) => n >= a && n <= b);

/** The parts of a spec the lab reasons about, with issue 2's (and issue 5's) defaults filled in. */
export interface SpecView {
  raw: Record<string, any>;
  iface: string;
  addresses: string[];
  manage: boolean;
  table: number;
  priority?: number;
  /** Protocol names; "all" means no protocol selector. */
  protocols: string[];
  /** Excluded prefixes (named sets expanded, unmanaged endpoints added). */
  exclude: Prefix[];
  /** Each exclude entry as written, with what it expands to. */
  excludeEntries: { entry: string; prefixes: Prefix[] }[];
  include?: Prefix[];
  users?: Ranges;
  ports?: Ranges;
  sources: "all" | "local";
  killswitch: boolean;
  ipv6: "tunnel" | "block" | "direct";
  directConnected: boolean;
  /** "direct": replies and source-bound sockets stay off the tunnel; "capture": every source is captured. */
  inbound: "direct" | "capture";
  /** The tunnel's own firewall mark (from the generated .netdev), when it marks its packets. */
  fwmark?: number;
  /** tunnel.dns: resolvers reached through the tunnel, DNS to them from every user whatever the selectors. */
  resolvers: string[];
}

export async function readSpec(path: string): Promise<Record<string, any>> {
  const text = await readFile(path, "utf8");
  return path.endsWith(".json") ? JSON.parse(text) : (TOML.parse(text) as Record<string, any>);
}

export function specView(raw: Record<string, any>): SpecView {
  const tunnel = raw.tunnel ?? {};
  const split = raw.split ?? {};
  const addresses: string[] = tunnel.addresses ?? [];
  const entries: string[] = split.exclude ?? ["@local"];
  const expand = (entry: string) => {
    const list = entry.startsWith("@") ? NAMED_SETS[entry] : [entry];
    if (!list) throw new Error(`lab: unknown named set ${entry}`);
    return list.map(parsePrefix);
  };
  const excludeEntries = entries.map((entry) => ({ entry, prefixes: expand(entry) }));
  // An unmanaged tunnel's endpoints are kept direct (issue 5).
  for (const e of tunnel.endpoints ?? []) excludeEntries.push({ entry: `endpoint ${e}`, prefixes: [parsePrefix(e)] });
  const hasV6 = addresses.some((a) => a.includes(":"));
  const view: SpecView = {
    raw,
    iface: tunnel.interface ?? "wg0",
    addresses,
    manage: tunnel.manage ?? true,
    table: split.table ?? 10086,
    priority: split.priority,
    protocols: (split.protocols ?? ["tcp"]).map((p: string | number) => protoName(p)!),
    exclude: excludeEntries.flatMap((e) => e.prefixes),
    excludeEntries,
    sources: split.sources ?? "all",
    killswitch: split.killswitch ?? false,
    ipv6: split.ipv6 ?? (hasV6 ? "tunnel" : "block"),
    directConnected: split.direct_connected ?? true,
    inbound: split.inbound ?? "direct",
    resolvers: tunnel.dns ?? [],
  };
  if (split.include) view.include = (split.include as string[]).flatMap(expand);
  const users = ranges(split.users);
  if (users) view.users = users;
  const ports = ranges(split.ports);
  if (ports) view.ports = ports;
  return view;
}

const captures = (spec: SpecView, proto: string) => spec.protocols.includes("all") || spec.protocols.includes(proto);

// ------------------------------------------------------------------ verdicts

export type Verdict = "tunnel" | "direct" | "unreachable";

export interface Probe {
  dst: string;
  proto: "tcp" | "udp";
  uid?: number;
  dport?: number;
  mark?: number;
  /** Why this destination is in the table. */
  why: string;
}

/** Addresses the lab host itself owns or treats as local (the kernel's local table answers first). */
function isLocal(dst: string, spec: SpecView): boolean {
  const own = [ADDR.hostLan4, ADDR.hostLan6, ...spec.addresses.map((a) => a.split("/")[0]!)];
  return own.includes(dst) || contains(parsePrefix("127.0.0.0/8"), dst) || dst === "::1";
}

const CONNECTED = [ADDR.lanPrefix4, ADDR.lanPrefix6].map(parsePrefix);

/** The prefixes the tunnel address itself makes connected (e.g. 10.254.0.0/24 for 10.254.0.2/24). */
function tunnelConnected(spec: SpecView): Prefix[] {
  return spec.addresses.map(parsePrefix).filter((p) => p.len < (p.family === 4 ? 32 : 128));
}

/** What our spec says should happen to a flow from the lab host. */
export function expectedVerdict(spec: SpecView, probe: Probe): { verdict: Verdict; reason: string } {
  const { family } = parseAddress(probe.dst);
  if (isLocal(probe.dst, spec)) return { verdict: "direct", reason: "local address (local table)" };
  // IPv6 multicast: the kernel's local table holds ff00::/8 for every link.
  if (family === 6 && contains(parsePrefix("ff00::/8"), probe.dst)) return { verdict: "direct", reason: "multicast (local table)" };
  if (tunnelConnected(spec).some((p) => contains(p, probe.dst))) return { verdict: "tunnel", reason: "the tunnel's own subnet (main table)" };
  if (spec.fwmark !== undefined && probe.mark === spec.fwmark) return { verdict: "direct", reason: "the tunnel's own packets (fwmark)" };
  const resolver = spec.resolvers.includes(probe.dst);
  if (resolver && probe.dport === 53) return { verdict: "tunnel", reason: "DNS to a tunnel.dns resolver (every user and protocol selector)" };
  if (!captures(spec, probe.proto)) return { verdict: "direct", reason: `${probe.proto} is not split` };
  if (spec.users && !inRanges(spec.users, probe.uid ?? 0)) return { verdict: "direct", reason: `uid ${probe.uid ?? 0} is not split` };
  if (spec.ports && (probe.dport === undefined || !inRanges(spec.ports, probe.dport))) {
    return { verdict: "direct", reason: `port ${probe.dport ?? "(none)"} is not split` };
  }
  if (spec.directConnected && CONNECTED.some((p) => contains(p, probe.dst))) {
    return { verdict: "direct", reason: "connected subnet (direct_connected)" };
  }
  // A captured flow to a resolver finds its host route in the table, which beats any throw.
  if (resolver) return { verdict: "tunnel", reason: "a tunnel.dns resolver (host route in the table)" };
  const excluded = spec.excludeEntries.find((e) => e.prefixes.some((p) => contains(p, probe.dst)));
  if (excluded) return { verdict: "direct", reason: `excluded by ${excluded.entry}` };
  if (spec.include && !spec.include.some((p) => contains(p, probe.dst))) return { verdict: "direct", reason: "not included" };
  if (family === 6) {
    if (spec.ipv6 === "tunnel") return { verdict: "tunnel", reason: "ipv6 = tunnel" };
    if (spec.ipv6 === "block") return { verdict: "unreachable", reason: "ipv6 = block" };
    return { verdict: "direct", reason: "ipv6 = direct" };
  }
  return { verdict: "tunnel", reason: spec.include ? "split (included)" : "split" };
}

/** The blog's final script: throws for RFC 1918 space, an IPv4-only TCP rule, nothing for IPv6. */
export const BLOG_THROWS = ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8"];

export function blogVerdict(spec: SpecView, probe: Probe): { verdict: Verdict; reason: string } {
  const { family } = parseAddress(probe.dst);
  if (isLocal(probe.dst, spec)) return { verdict: "direct", reason: "local address (local table)" };
  if (family === 6 && contains(parsePrefix("ff00::/8"), probe.dst)) return { verdict: "direct", reason: "multicast (local table)" };
  if (probe.proto !== "tcp") return { verdict: "direct", reason: `${probe.proto} is not split` };
  if (family === 6) return { verdict: "direct", reason: "the blog has no IPv6 rule" };
  if (BLOG_THROWS.map(parsePrefix).some((p) => contains(p, probe.dst))) return { verdict: "direct", reason: "blog throw" };
  return { verdict: "tunnel", reason: "blog rule" };
}

/**
 * The probe table: a public address per family (the lab's internet server and one
 * more), first and last address of every excluded (and included) prefix, the LAN
 * (connected), the tunnel endpoint and the tunnel's own subnet, each for TCP and
 * UDP; with users or ports in the spec, each also as a split and a non-split uid
 * and port; with a tunnel firewall mark, the endpoint and a public address with
 * and without it.
 */
export function probeTable(spec: SpecView): Probe[] {
  const destinations: { dst: string; why: string }[] = [
    { dst: ADDR.server4, why: "public IPv4 (internet server)" },
    { dst: "203.0.113.9", why: "public IPv4" },
    { dst: ADDR.server6, why: "public IPv6 (internet server)" },
    { dst: "2001:db8:99::9", why: "public IPv6" },
    { dst: ADDR.lanHost4, why: "LAN host (connected)" },
    { dst: ADDR.lanHost6, why: "LAN host IPv6 (connected)" },
    { dst: ADDR.peerInet4, why: "tunnel endpoint" },
    { dst: "10.253.0.1", why: "tunnel subnet" },
    ...spec.addresses.map((a) => {
      const p = parsePrefix(a);
      return { dst: firstAndLast(p)[0], why: `tunnel prefix ${p.text}` };
    }),
  ];
  const edges = (list: { entry: string; prefixes: Prefix[] }[], kind: string) => {
    for (const { entry, prefixes } of list) {
      for (const p of prefixes) {
        const [first, last] = firstAndLast(p);
        destinations.push({ dst: first, why: `first of ${p.text} (${kind} ${entry})` });
        if (last !== first) destinations.push({ dst: last, why: `last of ${p.text} (${kind} ${entry})` });
      }
    }
  };
  edges(spec.excludeEntries, "exclude");
  if (spec.include) edges([{ entry: "include", prefixes: spec.include }], "in");
  for (const cidr of BLOG_THROWS) {
    const [first] = firstAndLast(parsePrefix(cidr));
    destinations.push({ dst: first, why: `first of ${cidr} (blog throw)` });
  }
  const seen = new Set<string>();
  const unique = destinations.filter((d) => (seen.has(d.dst) ? false : (seen.add(d.dst), true)));
  const protos: ("tcp" | "udp")[] = ["tcp", "udp"];
  const uids: (number | undefined)[] = spec.users ? [undefined, spec.users[0]![0], spec.users[0]![1] + 1] : [undefined];
  const ports: (number | undefined)[] = spec.ports ? [...new Set([spec.ports[0]![0], spec.ports.at(-1)![1], 7777])] : [undefined];
  const probes: Probe[] = [];
  for (const d of unique) {
    for (const proto of protos) {
      for (const uid of uids) {
        for (const dport of ports) {
          const p: Probe = { ...d, proto };
          if (uid !== undefined) p.uid = uid;
          if (dport !== undefined) p.dport = dport;
          probes.push(p);
        }
      }
    }
  }
  for (const dst of spec.resolvers) {
    for (const proto of protos) for (const uid of uids) probes.push({ dst, proto, dport: 53, ...(uid === undefined ? {} : { uid }), why: "DNS to a tunnel.dns resolver" });
  }
  if (spec.fwmark !== undefined) {
    for (const dst of [ADDR.peerInet4, ADDR.server4]) {
      for (const proto of protos) probes.push({ dst, proto, mark: spec.fwmark, why: "marked as the tunnel's own packet" });
    }
  }
  return probes;
}

// ------------------------------------------------------------------ planned kernel state

const entriesOf = (s: Section, key: string) => s.entries.filter((e) => e.key === key).map((e) => String(e.value));
const one = (s: Section, key: string) => entriesOf(s, key).at(-1);

function tableName(t: string | undefined): string {
  if (t === undefined || t === "main" || t === "254") return "main";
  if (t === "local" || t === "255") return "local";
  if (t === "default" || t === "253") return "default";
  return t;
}

/** Canonical text of one policy rule, the same for a .network section and `ip -j rule` output. */
export function canonRule(r: {
  family: string;
  priority: number | string;
  table: string;
  ipproto?: string;
  suppress?: number | string;
  iif?: string;
  oif?: string;
  from?: string;
  to?: string;
  fwmark?: string;
  uid?: string;
  dport?: string;
  sport?: string;
  not?: boolean;
  type?: string;
}): string {
  const parts = [r.family, `pref ${r.priority}`];
  if (r.not) parts.push("not");
  if (r.from) parts.push(`from ${r.from}`);
  if (r.to) parts.push(`to ${r.to}`);
  if (r.ipproto) parts.push(`ipproto ${r.ipproto}`);
  if (r.iif) parts.push(`iif ${r.iif}`);
  if (r.oif) parts.push(`oif ${r.oif}`);
  if (r.fwmark) parts.push(`fwmark ${r.fwmark}`);
  if (r.uid) parts.push(`uidrange ${r.uid}`);
  if (r.sport) parts.push(`sport ${r.sport}`);
  if (r.dport) parts.push(`dport ${r.dport}`);
  if (r.type && r.type !== "table") parts.push(r.type);
  else parts.push(`lookup ${tableName(r.table)}`);
  if (r.suppress !== undefined) parts.push(`suppress_prefixlength ${r.suppress}`);
  return parts.join(" ");
}

const range = (v: string) => (v.includes("-") ? v : `${v}-${v}`);
const hexMark = (v: string) => {
  const [mark, mask] = v.split("/");
  return mask === undefined ? `0x${Number(mark).toString(16)}` : `0x${Number(mark).toString(16)}/0x${Number(mask).toString(16)}`;
};

const KNOWN_KEYS: Record<string, Set<string>> = {
  RoutingPolicyRule: new Set([
    "Family", "Priority", "Table", "IPProtocol", "SuppressPrefixLength", "IncomingInterface", "OutgoingInterface",
    "From", "To", "FirewallMark", "User", "DestinationPort", "SourcePort", "Invert", "Type",
  ]),
  Route: new Set(["Destination", "Type", "Table", "PreferredSource", "Gateway", "Metric", "Scope", "Protocol", "GatewayOnLink"]),
};

/**
 * Keys in [Route] / [RoutingPolicyRule] sections that the lab's model of the plan
 * does not know: the plan comparison cannot vouch for them, so assertion 2 reports them.
 */
export function unknownKeys(sections: Section[]): string[] {
  return sections.flatMap((s) =>
    KNOWN_KEYS[s.name] ? s.entries.filter((e) => !KNOWN_KEYS[s.name]!.has(e.key)).map((e) => `[${s.name}] ${e.key}=${e.value}`) : [],
  );
}

export function rulesFromNetwork(sections: Section[]): string[] {
  const out: string[] = [];
  for (const s of sections.filter((x) => x.name === "RoutingPolicyRule")) {
    const from = one(s, "From");
    const to = one(s, "To");
    let families: string[];
    const fam = one(s, "Family");
    if (fam === "both") families = ["ipv4", "ipv6"];
    else if (fam) families = [fam];
    else if ((from ?? to)?.includes(":")) families = ["ipv6"];
    else families = ["ipv4"];
    const prefix = (p: string | undefined) => (p ? parsePrefix(p).text : undefined);
    for (const family of families) {
      out.push(
        canonRule({
          family,
          priority: one(s, "Priority") ?? "?",
          table: one(s, "Table") ?? "main",
          // A number (networkd takes "ipv6-icmp" only as 58) in the kernel's own naming, as canonKernelRule has it.
          ipproto: protoName(one(s, "IPProtocol")),
          suppress: one(s, "SuppressPrefixLength"),
          iif: one(s, "IncomingInterface"),
          oif: one(s, "OutgoingInterface"),
          from: prefix(from),
          to: prefix(to),
          fwmark: one(s, "FirewallMark") && hexMark(one(s, "FirewallMark")!),
          uid: one(s, "User") && range(one(s, "User")!),
          dport: one(s, "DestinationPort") && range(one(s, "DestinationPort")!),
          sport: one(s, "SourcePort") && range(one(s, "SourcePort")!),
          not: ["yes", "true", "1", "on"].includes(one(s, "Invert") ?? ""),
          type: one(s, "Type"),
        }),
      );
    }
  }
  return out.sort();
}

const PROTO_NAMES: Record<string, string> = { "6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "132": "sctp" };
const PROTO_ALIASES: Record<string, string> = { icmpv6: "ipv6-icmp" };

/** One spelling per IP protocol: "58", "icmpv6", "ipv6-icmp" and iproute2's "ipproto-58" (no /etc/protocols) all become "ipv6-icmp". */
export function protoName(p: string | number | undefined): string | undefined {
  if (p === undefined) return undefined;
  const text = String(p).toLowerCase().replace(/^ipproto-/, "");
  return PROTO_NAMES[text] ?? PROTO_ALIASES[text] ?? text;
}

export function canonKernelRule(r: Record<string, any>): string {
  const prefix = (addr: string | undefined, len: number | undefined) =>
    addr === undefined || addr === "all" ? undefined : parsePrefix(`${addr}/${len ?? (addr.includes(":") ? 128 : 32)}`).text;
  const range2 = (a: number | undefined, b: number | undefined) => (a === undefined ? undefined : `${a}-${b ?? a}`);
  return canonRule({
    family: r.family,
    priority: r.priority,
    table: r.table ?? "main",
    ipproto: protoName(r.ipproto),
    suppress: r.suppress_prefixlen,
    iif: r.iif,
    oif: r.oif,
    from: prefix(r.src, r.srclen),
    to: prefix(r.dst, r.dstlen),
    fwmark: r.fwmark === undefined ? undefined : r.fwmask && r.fwmask !== "0xffffffff" ? `${r.fwmark}/${r.fwmask}` : r.fwmark,
    uid: range2(r.uid_start, r.uid_end),
    // iproute2 prints a single port as "dport", a range as "dport_start"/"dport_end".
    dport: r.dport !== undefined ? range2(r.dport, r.dport) : range2(r.dport_start, r.dport_end),
    sport: r.sport !== undefined ? range2(r.sport, r.sport) : range2(r.sport_start, r.sport_end),
    not: "not" in r,
    type: r.action ?? (r.table === undefined ? r.type : undefined),
  });
}

/** Canonical text of one route: "TABLE FAMILY TYPE DST [dev D] [src S] [via G]". */
export function canonRoute(r: {
  table: string;
  family: string;
  type: string;
  dst: string;
  dev?: string;
  src?: string;
  via?: string;
  metric?: number | string;
}): string {
  const parts = [`table ${tableName(r.table)}`, r.family, r.type, r.dst];
  if (r.type === "unicast") {
    if (r.via) parts.push(`via ${r.via}`);
    if (r.dev) parts.push(`dev ${r.dev}`);
  }
  if (r.src) parts.push(`src ${r.src}`);
  // The kernel's default metrics (0 for IPv4, 1024 for IPv6) are left out on both sides.
  const metric = r.metric === undefined ? undefined : Number(r.metric);
  if (metric !== undefined && metric !== (r.family === "ipv4" ? 0 : 1024)) parts.push(`metric ${metric}`);
  return parts.join(" ");
}

export function routesFromNetwork(sections: Section[], iface: string): string[] {
  const out: string[] = [];
  for (const s of sections.filter((x) => x.name === "Route")) {
    const gateway = one(s, "Gateway");
    const dest = one(s, "Destination") ?? (gateway?.includes(":") ? "::/0" : "0.0.0.0/0");
    const p = parsePrefix(dest);
    out.push(
      canonRoute({
        table: one(s, "Table") ?? "main",
        family: p.family === 4 ? "ipv4" : "ipv6",
        type: one(s, "Type") ?? "unicast",
        dst: p.len === 0 ? "default" : p.text,
        dev: iface,
        src: one(s, "PreferredSource"),
        via: gateway,
        metric: one(s, "Metric"),
      }),
    );
  }
  return out.sort();
}

export function canonKernelRoute(r: Record<string, any>, table: string, family: string): string {
  const dst = r.dst === "default" ? "default" : parsePrefix(String(r.dst)).text;
  return canonRoute({ table, family, type: r.type ?? "unicast", dst, dev: r.dev, src: r.prefsrc, via: r.gateway, metric: r.metric });
}

/** The tables the .network's routes and rules refer to (not main/local/default). */
export function tablesOf(sections: Section[]): string[] {
  const tables = new Set<string>();
  for (const s of sections) {
    if (s.name === "Route" || s.name === "RoutingPolicyRule") {
      const t = tableName(one(s, "Table"));
      if (!["main", "local", "default"].includes(t)) tables.add(t);
    }
  }
  return [...tables].sort();
}

/** Address= lines of a .network. */
export function addressesOf(sections: Section[]): string[] {
  return sections.filter((s) => s.name === "Network" || s.name === "Address").flatMap((s) => [...entriesOf(s, "Address")]);
}

/** The interface a .network matches (its [Match] Name=). */
export function matchName(sections: Section[]): string | undefined {
  const match = sections.find((s) => s.name === "Match");
  return match ? one(match, "Name") : undefined;
}
