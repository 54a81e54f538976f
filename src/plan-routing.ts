// What the kernel holds once networkd has applied a plan: its [RoutingPolicyRule]
// and [Route] sections (the exact entries we emit), read with networkd's rules
// and defaults, plus the routes the kernel adds for the link's addresses.
// explain simulates with it; doctor compares the live state against it.

import { CommandError } from "./command-error.js";
import { sectionsOf, type Plan, type Section } from "./model.js";
import { parseAddress, parsePrefix, type Family, type Prefix } from "./prefix.js";
import { TABLE_IDS, type Range, type Route, type RouteType, type Rule, type RuleAction } from "./route-model.js";
import { parseTable, protocolNumber } from "./host-state.js";

/** A plan section explain cannot model: better refuse than explain something else. */
export class PlanRoutingError extends CommandError {
  constructor(message: string) {
    super(message, 1);
  }
}

export interface PlannedRouting {
  /** Rules as networkd installs them. */
  readonly rules: readonly Rule[];
  /** Routes from [Route] sections. */
  readonly routes: readonly Route[];
  /** Routes the kernel adds for the links' addresses (local table, and the prefix route in main). */
  readonly addressRoutes: readonly Route[];
  /** Each planned link with its addresses, as "10.253.0.2/32". */
  readonly links: readonly { readonly name: string; readonly addresses: readonly string[] }[];
  /** The link whose .network carries each rule and route (what `networkctl reconfigure` re-applies). */
  readonly linkOf: ReadonlyMap<Rule | Route, string>;
  /** Tables the plan owns outright: every route in them is planned (main, local and default are shared). */
  readonly ownTables: ReadonlySet<number>;
}

// Keys that do not change which route or rule a packet gets.
const ROUTE_KEYS_WITHOUT_EFFECT = new Set(["PreferredSource", "Scope", "Protocol", "MTUBytes", "GatewayOnLink", "IPv6Preference", "InitialCongestionWindow", "InitialAdvertisedReceiveWindow", "QuickAck", "FastOpenNoCookie", "TTLPropagate", "TCPAdvertisedMaximumSegmentSize", "TCPCongestionControlAlgorithm"]);
const RULE_TYPES = new Set(["blackhole", "unreachable", "prohibit"]);
const ROUTE_TYPES = new Set<RouteType>(["unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw"]);

const values = (section: Section, key: string) => section.entries.filter((e) => e.key === key).map((e) => String(e.value));
const last = (section: Section, key: string) => values(section, key).at(-1);

function prefix(text: string, where: string): Prefix {
  const parsed = parsePrefix(text, { bareAddress: true });
  if (!parsed.ok) throw new PlanRoutingError(`${where}: "${text}" ${parsed.message}`);
  return parsed.value;
}

function portRange(text: string, where: string): Range {
  const match = /^([0-9]+)(?:-([0-9]+))?$/.exec(text);
  if (!match) throw new PlanRoutingError(`${where}: "${text}" is not a port or port range`);
  return { start: Number(match[1]), end: Number(match[2] ?? match[1]) };
}

function table(text: string, where: string): number {
  const id = parseTable(text);
  if (id === undefined) throw new PlanRoutingError(`${where}: table "${text}" is not a number or main/local/default`);
  return id;
}

function rulesOf(section: Section, where: string): Rule[] {
  const known = new Set(["Family", "Priority", "Table", "From", "To", "IPProtocol", "FirewallMark", "User", "SourcePort", "DestinationPort", "IncomingInterface", "OutgoingInterface", "InvertRule", "SuppressPrefixLength", "Type"]);
  for (const { key } of section.entries) if (!known.has(key)) throw new PlanRoutingError(`${where}: ${key}= is not modelled by explain`);
  const from = last(section, "From");
  const to = last(section, "To");
  const addressFamily = [from, to].filter((v) => v !== undefined).map((v) => prefix(v!, where).family)[0];
  const familyText = last(section, "Family");
  // networkd: Family= defaults to the family of From=/To=, else IPv4; "both" installs one rule per family.
  const families: Family[] = familyText === "both" ? [4, 6] : familyText === "ipv6" ? [6] : familyText === "ipv4" ? [4] : [addressFamily ?? 4];
  const priorityText = last(section, "Priority");
  if (priorityText === undefined) throw new PlanRoutingError(`${where}: has no Priority= (the kernel would pick one)`);
  const type = last(section, "Type");
  let action: RuleAction;
  if (type !== undefined && type !== "table") {
    if (!RULE_TYPES.has(type)) throw new PlanRoutingError(`${where}: Type=${type} is not modelled`);
    action = { kind: type as "blackhole" | "unreachable" | "prohibit" };
  } else {
    const suppress = last(section, "SuppressPrefixLength");
    const id = table(last(section, "Table") ?? "main", where);
    action = suppress === undefined ? { kind: "lookup", table: id } : { kind: "lookup", table: id, suppressPrefixLength: Number(suppress) };
  }
  return families.map((family) => {
    const rule: { -readonly [K in keyof Rule]: Rule[K] } = { family, priority: Number(priorityText), action, origin: "plan" };
    if (from !== undefined) rule.from = prefix(from, where);
    if (to !== undefined) rule.to = prefix(to, where);
    const protocol = last(section, "IPProtocol");
    if (protocol !== undefined) rule.ipproto = protocolNumber(protocol) ?? (() => { throw new PlanRoutingError(`${where}: IPProtocol=${protocol} is unknown`); })();
    const mark = last(section, "FirewallMark");
    if (mark !== undefined) {
      const [value, mask] = mark.split("/").map(Number);
      rule.fwmark = { value: value!, mask: mask ?? 0xffffffff };
    }
    const user = last(section, "User");
    if (user !== undefined) rule.uid = portRange(user, `${where}: User=`);
    const sport = last(section, "SourcePort");
    const dport = last(section, "DestinationPort");
    if (sport !== undefined) rule.sport = portRange(sport, where);
    if (dport !== undefined) rule.dport = portRange(dport, where);
    const iif = last(section, "IncomingInterface");
    const oif = last(section, "OutgoingInterface");
    if (iif !== undefined) rule.iif = iif;
    if (oif !== undefined) rule.oif = oif;
    if (/^(yes|true|1|on)$/.test(last(section, "InvertRule") ?? "")) rule.invert = true;
    return rule;
  });
}

function routeOf(section: Section, dev: string, where: string): Route {
  const known = new Set(["Destination", "Table", "Type", "Gateway", "Metric"]);
  for (const { key } of section.entries) {
    if (!known.has(key) && !ROUTE_KEYS_WITHOUT_EFFECT.has(key)) throw new PlanRoutingError(`${where}: ${key}= is not modelled by explain`);
  }
  const gateway = last(section, "Gateway");
  const gatewayFamily = gateway === undefined ? undefined : parseAddress(gateway);
  const destination = last(section, "Destination");
  const family: Family = destination !== undefined ? prefix(destination, where).family : gatewayFamily?.ok ? gatewayFamily.value.family : 4;
  const dst = destination === undefined ? { family, network: 0n, length: 0 } : prefix(destination, where);
  const type = (last(section, "Type") ?? "unicast") as RouteType;
  if (!ROUTE_TYPES.has(type)) throw new PlanRoutingError(`${where}: Type=${type} is not modelled`);
  const metric = last(section, "Metric");
  // networkd gives IPv6 routes metric 1024 (the kernel's default for user routes) unless told otherwise.
  const route: { -readonly [K in keyof Route]: Route[K] } = { family, table: table(last(section, "Table") ?? "main", where), dst, type, metric: metric === undefined ? (family === 6 ? 1024 : 0) : Number(metric), origin: "plan" };
  if (type === "unicast") route.dev = dev;
  if (gateway !== undefined) route.gateway = gateway;
  return route;
}

/** The routes the kernel adds for an interface address (fib_add_ifaddr, addrconf). */
export function addressRoutes(address: string, dev: string): Route[] {
  const [host, lengthText] = address.split("/");
  const parsed = parseAddress(host!);
  if (!parsed.ok) return [];
  const { family, value } = parsed.value;
  const length = Number(lengthText);
  const bits = family === 4 ? 32 : 128;
  const base = { family, dev, origin: "plan" as const };
  const routes: Route[] = [{ ...base, table: TABLE_IDS.local!, dst: { family, network: value, length: bits }, type: "local", metric: 0 }];
  if (length < bits) {
    const hostBits = BigInt(bits - length);
    const network = (value >> hostBits) << hostBits;
    routes.push({ ...base, table: TABLE_IDS.main!, dst: { family, network, length }, type: "unicast", metric: family === 6 ? 256 : 0 });
    if (family === 4 && length < 31) {
      routes.push({ ...base, table: TABLE_IDS.local!, dst: { family, network: network | ((1n << hostBits) - 1n), length: 32 }, type: "broadcast", metric: 0 });
    }
  }
  return routes;
}

export function plannedRouting(plan: Plan): PlannedRouting {
  const rules: Rule[] = [];
  const routes: Route[] = [];
  const addressed: Route[] = [];
  const links: { name: string; addresses: string[] }[] = [];
  const linkOf = new Map<Rule | Route, string>();
  for (const unit of plan.units) {
    if (unit.kind !== "network") continue;
    const sections = sectionsOf(unit);
    const match = sections.find((s) => s.name === "Match");
    const names = match ? values(match, "Name").flatMap((v) => v.split(/\s+/)) : [];
    if (names.length !== 1 || /[*?[]/.test(names[0]!)) throw new PlanRoutingError(`${unit.fileName}: [Match] must name exactly one interface for explain`);
    const dev = names[0]!;
    const addresses: string[] = [];
    sections.forEach((section, index) => {
      const where = `${unit.fileName}: [${section.name}] #${index + 1}`;
      if (section.name === "RoutingPolicyRule") {
        for (const rule of rulesOf(section, where)) {
          rules.push(rule);
          linkOf.set(rule, dev);
        }
      } else if (section.name === "Route") {
        const route = routeOf(section, dev, where);
        routes.push(route);
        linkOf.set(route, dev);
      }
      else if (section.name === "Network" || section.name === "Address") addresses.push(...values(section, "Address"));
    });
    links.push({ name: dev, addresses });
    addressed.push(...addresses.flatMap((a) => addressRoutes(a, dev)));
  }
  const shared = new Set<number>([TABLE_IDS.main!, TABLE_IDS.local!, TABLE_IDS.default!]);
  const ownTables = new Set([...routes.map((r) => r.table), ...rules.flatMap((r) => (r.action.kind === "lookup" ? [r.action.table] : []))].filter((t) => !shared.has(t)));
  return { rules, routes, addressRoutes: addressed, links, linkOf, ownTables };
}
