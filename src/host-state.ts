// The host's routing state as the kernel reports it: `ip -j rule` and
// `ip -j route show table all`, read live or from files, turned into the
// routing model. Also the other live facts doctor checks (links, sysctls, whether networkd runs).

import { execFile } from "node:child_process";
import { readdir, readFile, readlink } from "node:fs/promises";
import { CommandError } from "./command-error.js";
import { formatAddress, parseAddress, parsePrefix, type Family, type Prefix } from "./prefix.js";
import { TABLE_IDS, type Range, type Route, type RouteType, type Rule, type RuleAction, type RoutingState } from "./route-model.js";

/** A problem reading or understanding the host's state; `where` names the file or command. */
export class HostStateError extends CommandError {
  constructor(readonly where: string, message: string) {
    super(`${where}: ${message}`, 1);
  }
}

// The protocol names iproute2 and networkd print and accept (/etc/protocols).
const PROTOCOLS: Readonly<Record<string, number>> = {
  icmp: 1, igmp: 2, tcp: 6, udp: 17, dccp: 33, gre: 47, esp: 50, ah: 51, "ipv6-icmp": 58, sctp: 132, udplite: 136,
};
const PROTOCOL_NAMES = new Map(Object.entries(PROTOCOLS).map(([name, n]) => [n, name]));

/** A protocol by name ("tcp", "icmpv6" too) or number ("17", iproute2's "ipproto-17"); undefined when unknown. */
export function protocolNumber(text: string): number | undefined {
  const name = text.toLowerCase();
  if (name === "icmpv6") return PROTOCOLS["ipv6-icmp"];
  if (PROTOCOLS[name] !== undefined) return PROTOCOLS[name];
  const numeric = /^(?:ipproto-)?([0-9]{1,3})$/.exec(name);
  return numeric && Number(numeric[1]) <= 255 ? Number(numeric[1]) : undefined;
}

export function protocolName(protocol: number): string {
  return PROTOCOL_NAMES.get(protocol) ?? String(protocol);
}

export function parseTable(text: string): number | undefined {
  if (TABLE_IDS[text] !== undefined) return TABLE_IDS[text];
  return /^[0-9]+$/.test(text) && Number(text) <= 0xffffffff ? Number(text) : undefined;
}

type Json = Record<string, unknown>;

/** "10.0.0.0/8", "10.0.0.1" (a host), "default" or "all" as a prefix of FAMILY. */
function prefixOf(text: string, family: Family, length?: number): Prefix | undefined {
  if (text === "default" || text === "all") return { family, network: 0n, length: 0 };
  const parsed = parsePrefix(length === undefined ? text : `${text}/${length}`, { bareAddress: true });
  return parsed.ok && parsed.value.family === family ? parsed.value : undefined;
}

function range(start: unknown, end: unknown, single: unknown): Range | undefined {
  if (typeof single === "number") return { start: single, end: single };
  if (typeof start === "number" && typeof end === "number") return { start, end };
  return undefined;
}

const hexOrDecimal = (value: unknown) => (typeof value === "number" ? value : typeof value === "string" ? Number(value) : NaN);

/** One entry of `ip -j rule` as a model rule. */
export function ruleFromIp(entry: Json, family: Family, where: string): Rule {
  const fail = (what: string): never => {
    throw new HostStateError(where, `rule ${JSON.stringify(entry)}: ${what}`);
  };
  const priority = typeof entry.priority === "number" ? entry.priority : fail("has no priority");
  let action: RuleAction;
  if (entry.goto !== undefined) action = { kind: "goto", priority: Number(entry.goto) };
  else if ("nop" in entry) action = { kind: "nop" };
  else if (entry.action !== undefined) {
    // By name, or by the number `ip -N` prints (FR_ACT_* in linux/fib_rules.h).
    const kind = ({ "6": "blackhole", "7": "unreachable", "8": "prohibit" } as Record<string, string>)[String(entry.action)] ?? String(entry.action);
    if (kind !== "blackhole" && kind !== "unreachable" && kind !== "prohibit") return fail(`action "${entry.action}" is not modelled`);
    action = { kind };
  }
  else {
    const table = parseTable(String(entry.table ?? "")) ?? fail(`table ${JSON.stringify(entry.table)} is a name from this machine's rt_tables; dump numeric tables instead: ip -N -j rule`);
    action = typeof entry.suppress_prefixlen === "number" ? { kind: "lookup", table, suppressPrefixLength: entry.suppress_prefixlen } : { kind: "lookup", table };
  }
  const selector = (key: "src" | "dst", lengthKey: string): Prefix | undefined => {
    const text = entry[key];
    if (text === undefined || text === "all") return undefined;
    return prefixOf(String(text), family, typeof entry[lengthKey] === "number" ? (entry[lengthKey] as number) : undefined) ?? fail(`${key} ${JSON.stringify(text)} is not an IPv${family} prefix`);
  };
  const rule: { -readonly [K in keyof Rule]: Rule[K] } = { family, priority, action, origin: "host" };
  if ("not" in entry) rule.invert = true;
  const from = selector("src", "srclen");
  const to = selector("dst", "dstlen");
  if (from) rule.from = from;
  if (to) rule.to = to;
  // A selector naming a missing interface never matches: the kernel keeps it "detached".
  if (typeof entry.iif === "string") rule.iif = "iif_detached" in entry ? `${entry.iif} (detached)` : entry.iif;
  if (typeof entry.oif === "string") rule.oif = "oif_detached" in entry ? `${entry.oif} (detached)` : entry.oif;
  if (entry.fwmark !== undefined) {
    const value = hexOrDecimal(entry.fwmark);
    const mask = entry.fwmask === undefined ? 0xffffffff : hexOrDecimal(entry.fwmask);
    if (!Number.isInteger(value) || !Number.isInteger(mask)) fail("has an unreadable fwmark");
    rule.fwmark = { value, mask };
  }
  const uid = range(entry.uid_start, entry.uid_end, undefined);
  if (uid) rule.uid = uid;
  if (entry.ipproto !== undefined) rule.ipproto = protocolNumber(String(entry.ipproto)) ?? fail(`ipproto ${JSON.stringify(entry.ipproto)} is unknown`);
  const sport = range(entry.sport_start, entry.sport_end, entry.sport);
  const dport = range(entry.dport_start, entry.dport_end, entry.dport);
  if (sport) rule.sport = sport;
  if (dport) rule.dport = dport;
  for (const key of ["tos", "dsfield", "l3mdev", "tun_id", "suppress_ifgroup"]) {
    if (entry[key] !== undefined && entry[key] !== "default" && entry[key] !== 0) fail(`selector "${key}" is not modelled`);
  }
  return rule;
}

// Route types by name, and by the number `ip -N` prints (RTN_* in linux/rtnetlink.h).
const ROUTE_TYPES: readonly (RouteType | undefined)[] = [undefined, "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw"];

/** The family of an `ip -j route` entry: IPv6 entries carry addresses with ':' or a "pref". */
function routeFamily(entry: Json): Family {
  const v6 = [entry.dst, entry.gateway, entry.prefsrc].some((v) => typeof v === "string" && v.includes(":")) || entry.pref !== undefined;
  return v6 ? 6 : 4;
}

/** One entry of `ip -j route show table all` as a model route, or undefined for a route the lookup never uses. */
export function routeFromIp(entry: Json, where: string): Route | undefined {
  const fail = (what: string): never => {
    throw new HostStateError(where, `route ${JSON.stringify(entry)}: ${what}`);
  };
  const family = routeFamily(entry);
  const flags = Array.isArray(entry.flags) ? entry.flags : [];
  if (flags.includes("dead")) return undefined;
  const typeText = String(entry.type ?? "unicast");
  const type = /^[0-9]+$/.test(typeText) ? ROUTE_TYPES[Number(typeText)] : ROUTE_TYPES.find((t) => t === typeText);
  if (type === undefined) return fail(`type "${typeText}" is not modelled`);
  if (entry.from !== undefined || entry.src !== undefined) fail("source-specific routes are not modelled");
  const table = entry.table === undefined ? TABLE_IDS.main! : (parseTable(String(entry.table)) ?? fail(`table ${JSON.stringify(entry.table)} is a name from this machine's rt_tables; dump numeric tables instead: ip -N -j route show table all`));
  const dst = prefixOf(String(entry.dst ?? ""), family) ?? fail(`dst ${JSON.stringify(entry.dst)} is not an IPv${family} prefix`);
  const route: { -readonly [K in keyof Route]: Route[K] } = { family, table, dst, type, metric: typeof entry.metric === "number" ? entry.metric : 0, origin: "host" };
  if (typeof entry.dev === "string") route.dev = entry.dev;
  // A multipath route: which nexthop a flow hashes to is not modelled, only whether they share a device.
  if (Array.isArray(entry.nexthops)) {
    const devs = [...new Set((entry.nexthops as Json[]).map((n) => String(n.dev)))];
    route.dev = devs.length === 1 ? devs[0]! : `multipath(${devs.join(",")})`;
  }
  if (typeof entry.gateway === "string") route.gateway = entry.gateway;
  return route;
}

/**
 * Splits text holding one or more JSON arrays (e.g. `ip -4 -j rule; ip -6 -j rule`) into the arrays.
 * One pass that finds where each top-level array ends (brackets outside strings), then one
 * JSON.parse per array: trying JSON.parse at every "]" instead was quadratic, and a table of
 * 70,000 routes (each with a "flags":[] of its own) took doctor five minutes.
 */
export function jsonArrays(text: string, where: string): Json[][] {
  const bad = () => new HostStateError(where, "expected the JSON arrays that `ip -j` prints");
  const arrays: Json[][] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      if (depth === 0) throw bad();
      inString = true;
    } else if (c === "[" || c === "{") {
      if (depth === 0) {
        if (c !== "[") throw bad();
        start = i;
      }
      depth++;
    } else if (c === "]" || c === "}") {
      if (--depth < 0) throw bad();
      if (depth === 0) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text.slice(start, i + 1));
        } catch {
          throw bad();
        }
        arrays.push(parsed as Json[]);
      }
    } else if (depth === 0 && !/\s/.test(c)) {
      throw bad();
    }
  }
  if (depth !== 0 || inString) throw bad();
  return arrays;
}

/**
 * Rules from `ip -j rule` text: one array (IPv4, as `ip -j rule` prints) or two
 * (`ip -4 -j rule; ip -6 -j rule`: IPv4, then IPv6).
 */
export function rulesFromText(text: string, where: string): Rule[] {
  const arrays = jsonArrays(text, where);
  if (arrays.length > 2) throw new HostStateError(where, `holds ${arrays.length} JSON arrays; expected the IPv4 rules and optionally the IPv6 rules`);
  return arrays.flatMap((entries, index) => entries.map((entry) => ruleFromIp(entry, index === 0 ? 4 : 6, where)));
}

/** Routes from `ip -j route show table all` text (any number of arrays; each entry's family is evident). */
export function routesFromText(text: string, where: string): Route[] {
  return jsonArrays(text, where).flat().flatMap((entry) => routeFromIp(entry, where) ?? []);
}

/** Runs `ip ARGS`; the runner is replaceable so the lab can ask a namespace. */
export type IpRunner = (args: readonly string[]) => Promise<string>;

export const localIp: IpRunner = (args) =>
  new Promise((resolve, reject) => {
    execFile("ip", [...args], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new HostStateError(`ip ${args.join(" ")}`, (stderr || error.message).trim().split("\n")[0]!));
      else resolve(stdout);
    });
  });

/** A family the host has disabled (no IPv6) has no rules or routes: an error there is an empty answer. */
async function perFamily(ip: IpRunner, family: Family, args: string[]): Promise<string> {
  try {
    return await ip([family === 4 ? "-4" : "-6", "-N", "-j", ...args]);
  } catch (error) {
    if (family === 6 && error instanceof HostStateError) return "[]";
    throw error;
  }
}

/** The live routing state: every rule and every route of every table, both families. */
export async function readLiveState(ip: IpRunner = localIp): Promise<RoutingState> {
  const [rules4, rules6, routes4, routes6] = await Promise.all([
    perFamily(ip, 4, ["rule", "show"]),
    perFamily(ip, 6, ["rule", "show"]),
    perFamily(ip, 4, ["route", "show", "table", "all"]),
    perFamily(ip, 6, ["route", "show", "table", "all"]),
  ]);
  const where = "ip -j rule / ip -j route show table all";
  return {
    rules: [...jsonArrays(rules4, where).flat().map((e) => ruleFromIp(e, 4, where)), ...jsonArrays(rules6, where).flat().map((e) => ruleFromIp(e, 6, where))],
    routes: [...routesFromText(routes4, where), ...routesFromText(routes6, where)],
  };
}

/** How to save a host's state for --rules/--routes (numeric tables: rt_tables names differ between machines). */
export const RULES_COMMAND = "{ ip -4 -N -j rule; ip -6 -N -j rule; } > FILE";
export const ROUTES_COMMAND = "ip -N -j route show table all > FILE";

export async function readStateFiles(rulesPath: string, routesPath: string): Promise<RoutingState> {
  const read = async (path: string, making: string) => {
    try {
      return await readFile(path, "utf8");
    } catch (error) {
      throw new HostStateError(path, `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); make it on the host with: ${making.replace("FILE", path)}`);
    }
  };
  return {
    rules: rulesFromText(await read(rulesPath, RULES_COMMAND), rulesPath),
    routes: routesFromText(await read(routesPath, ROUTES_COMMAND), routesPath),
  };
}

/** An address literal's family and value, or undefined when TEXT is not one. */
export function addressOf(text: string): { family: Family; value: bigint } | undefined {
  const parsed = parseAddress(text);
  return parsed.ok ? parsed.value : undefined;
}

/** A link as `ip -j address show` reports it. */
export interface LinkInfo {
  readonly name: string;
  readonly up: boolean;
  /** "10.253.0.2/32", canonical. */
  readonly addresses: readonly string[];
  /** networkd's state of the link (ADMIN_STATE in /run/systemd/netif/links/IFINDEX), e.g. "configured" or "failed"; absent when networkd has none. */
  readonly networkdState?: string;
  /** The .network file networkd configures the link from (NETWORK_FILE in the same state file); absent when none. */
  readonly networkFile?: string;
}

/** networkd's state of the link with this index, from its state file. */
async function networkdLinkState(ifindex: number): Promise<Pick<LinkInfo, "networkdState" | "networkFile">> {
  let text: string;
  try {
    text = await readFile(`/run/systemd/netif/links/${ifindex}`, "utf8");
  } catch {
    return {};
  }
  const networkdState = /^ADMIN_STATE=(.*)$/m.exec(text)?.[1];
  const networkFile = /^NETWORK_FILE=(.*)$/m.exec(text)?.[1];
  return { ...(networkdState === undefined ? {} : { networkdState }), ...(networkFile === undefined ? {} : { networkFile }) };
}

export async function readLinks(ip: IpRunner = localIp): Promise<Map<string, LinkInfo>> {
  const links = JSON.parse(await ip(["-j", "address", "show"])) as { ifindex: number; ifname: string; flags?: string[]; addr_info?: { local: string; prefixlen: number }[] }[];
  return new Map(
    await Promise.all(
      links.map(async (link): Promise<[string, LinkInfo]> => {
        const info: LinkInfo = {
          ...(await networkdLinkState(link.ifindex)),
          name: link.ifname,
          up: (link.flags ?? []).includes("UP"),
          addresses: (link.addr_info ?? []).map((a) => {
            const parsed = parseAddress(a.local);
            return `${parsed.ok ? formatAddress(parsed.value.family, parsed.value.value) : a.local}/${a.prefixlen}`;
          }),
        };
        return [link.ifname, info];
      }),
    ),
  );
}

/** A sysctl value of this network namespace (/proc/sys follows the reader's namespace), or undefined. Segments, since interface names may hold dots. */
export async function readSysctl(...segments: string[]): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/sys/${segments.join("/")}`, "utf8")).trim();
  } catch {
    return undefined;
  }
}

/** Whether a systemd-networkd runs in this network namespace (its comm is truncated to 15 characters). */
export async function networkdRunning(): Promise<boolean> {
  const ours = await readlink("/proc/self/ns/net").catch(() => undefined);
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if ((await readFile(`/proc/${pid}/comm`, "utf8")).trim() !== "systemd-network") continue;
    } catch {
      continue; // exited meanwhile
    }
    const theirs = await readlink(`/proc/${pid}/ns/net`).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? "gone" : undefined));
    if (theirs === "gone") continue;
    if (ours === undefined || theirs === undefined || theirs === ours) return true; // cannot tell: assume it is ours
  }
  return false;
}
