// `gen-networkd explain`: what Linux policy routing will do with a flow once the
// plan is applied. The plan's own rules and routes are combined with the host's
// (live, from files, or an assumed minimal host) and simulated (src/route-model.ts).

import { CommandError } from "./command-error.js";
import { sectionsOf, type Plan } from "./model.js";
import { generate } from "./generate.js";
import { addressOf, localIp, protocolName, protocolNumber, readLiveState, readStateFiles } from "./host-state.js";
import { NAMED_SETS, namedSet } from "./named-sets.js";
import { plannedRouting, type PlannedRouting } from "./plan-routing.js";
import type { PlanLists } from "./plan.js";
import { formatAddress, formatPrefix, parsePrefix, type AddressSet, type Family } from "./prefix.js";
import { decide, tableName, TABLE_IDS, type Decision, type Flow, type Route, type Rule, type RoutingState, type Step } from "./route-model.js";
import { columns, painter, type Painter } from "./terminal.js";
import type { Spec } from "./spec.js";
import { explainLookup, LOOKUP_PREFIX, lookupName, resolverAddresses, type Lookup } from "./explain-dns.js";

export class FlowSyntaxError extends CommandError {
  constructor(arg: string, message: string) {
    super(`explain: flow ${JSON.stringify(arg)}: ${message}; write flows like 203.0.113.9, tcp:203.0.113.9:443, udp:[2001:db8::1]:53, optionally followed by uid=1000, mark=0x1, sport=N, from=ADDR, forwarded or iif=NAME`, 2);
  }
}

/** One flow to explain, as the user wrote it, resolved. */
export interface FlowRequest extends Flow {
  readonly forwarded: boolean;
}

/** Where the host's other rules and routes come from. */
export type HostSource = { kind: "live" } | { kind: "files"; rules: string; routes: string } | { kind: "assumed" };

/** How the host looks when nothing is known about it: the kernel's own rules, loopback, a default route per family. */
export function assumedHost(): RoutingState {
  const local = TABLE_IDS.local!;
  const main = TABLE_IDS.main!;
  const rule = (family: Family, priority: number, table: number): Rule => ({ family, priority, action: { kind: "lookup", table }, origin: "assumed" });
  const route = (family: Family, table: number, dst: string, type: Route["type"], dev?: string): Route => {
    const parsed = parsePrefix(dst);
    if (!parsed.ok) throw new Error(`assumed route ${dst}: ${parsed.message}`);
    return { family, table, dst: parsed.value, type, metric: family === 6 ? 1024 : 0, origin: "assumed", ...(dev ? { dev } : {}) };
  };
  return {
    rules: [rule(4, 0, local), rule(4, 32766, main), rule(4, 32767, TABLE_IDS.default!), rule(6, 0, local), rule(6, 32766, main)],
    routes: [route(4, local, "127.0.0.0/8", "local", "lo"), route(6, local, "::1/128", "local", "lo"), route(4, main, "0.0.0.0/0", "unicast"), route(6, main, "::/0", "unicast")],
  };
}

/**
 * The state to simulate: the host's rules and routes, with the plan's rules in
 * place of the host's at the same priorities, the plan's tables exactly as
 * planned, and the routes of the tunnel's addresses added if the host lacks them.
 */
export function simulationState(planned: PlannedRouting, host: RoutingState): RoutingState {
  const planPriorities = new Set(planned.rules.map((r) => `${r.family}:${r.priority}`));
  const routes = [...host.routes.filter((r) => !planned.ownTables.has(r.table)), ...planned.routes];
  const key = (r: Route) => `${r.family} ${r.table} ${formatPrefix(r.dst)} ${r.type} ${r.dev}`;
  const present = new Set(routes.map(key));
  for (const route of planned.addressRoutes) if (!present.has(key(route))) routes.push(route);
  return { rules: [...host.rules.filter((r) => !planPriorities.has(`${r.family}:${r.priority}`)), ...planned.rules], routes };
}

// ------------------------------------------------------------------ flows

function parsePort(text: string, arg: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) throw new FlowSyntaxError(arg, `port "${text}" is not 0..65535`);
  return Number(text);
}

function parseTarget(text: string, arg: string): { family: Family; dst: bigint; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  let host = text;
  let port: string | undefined;
  if (bracketed) [host, port] = [bracketed[1]!, bracketed[2]];
  else if ((text.match(/:/g) ?? []).length === 1) [host, port] = text.split(":") as [string, string];
  const address = addressOf(host);
  if (!address) throw new FlowSyntaxError(arg, `"${host}" is not an IPv4 or IPv6 address`);
  return port === undefined ? { family: address.family, dst: address.value } : { family: address.family, dst: address.value, port: parsePort(port, arg) };
}

/**
 * Flows from command-line words. A flow is [PROTO:]ADDR[:PORT] (IPv6 with a port in
 * brackets); words like uid=1000 or forwarded that follow it refine it. A flow
 * without a protocol stands for one flow per protocol in DEFAULT_PROTOCOLS.
 */
export function parseFlows(words: readonly string[], defaultProtocols: readonly number[]): FlowRequest[] {
  const flows: FlowRequest[][] = [];
  for (const arg of words.flatMap((w) => w.split(/\s+/)).filter(Boolean)) {
    const modifier = /^(uid|mark|sport|from|iif)=(.*)$/.exec(arg);
    if (modifier || arg === "forwarded") {
      const current = flows.at(-1);
      if (!current) throw new FlowSyntaxError(arg, "refines a flow, so it must follow one");
      const [, key, value] = modifier ?? [arg, arg, ""];
      flows[flows.length - 1] = current.map((flow) => {
        switch (key) {
          case "uid":
            if (!/^[0-9]+$/.test(value!) || Number(value) > 0xfffffffe) throw new FlowSyntaxError(arg, "uid must be a number 0..4294967294");
            return { ...flow, uid: Number(value) };
          case "mark": {
            const mark = Number(value);
            if (value === "" || !Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) throw new FlowSyntaxError(arg, "mark must be a number, e.g. 0x1 or 51820");
            return { ...flow, mark };
          }
          case "sport":
            return { ...flow, sport: parsePort(value!, arg) };
          case "from": {
            const src = addressOf(value!);
            if (!src || src.family !== flow.family) throw new FlowSyntaxError(arg, `"${value}" is not an IPv${flow.family} address`);
            return { ...flow, src: src.value };
          }
          default:
            // Forwarded traffic is looked up for uid 0, from the interface it came in on.
            if (key === "iif" && !/^[^\s/:]{1,15}$/.test(value!)) throw new FlowSyntaxError(arg, "iif must be an interface name");
            return { ...flow, forwarded: true, uid: 0, iif: key === "iif" ? value! : "(any interface)" };
        }
      });
      continue;
    }
    const colon = arg.indexOf(":");
    const head = colon < 0 ? "" : arg.slice(0, colon);
    const protocol = colon < 0 ? undefined : protocolNumber(head);
    // "2001:db8::1" starts with a hex group, not a protocol: only a known protocol name is one.
    const named = protocol !== undefined && !/^[0-9a-f]{1,4}$/i.test(head);
    const rest = named ? arg.slice(colon + 1) : arg;
    const ported = protocol === 6 || protocol === 17 || protocol === 132 || protocol === 33 || protocol === 136;
    // "tcp:2001:db8::1:443" is an address, or an address and a port: as in URLs, brackets decide.
    if (named && ported && !rest.startsWith("[") && (rest.match(/:/g) ?? []).length > 1) {
      const last = rest.lastIndexOf(":");
      const port = /^[0-9]{1,5}$/.test(rest.slice(last + 1)) ? `, ${head}:[${rest.slice(0, last)}]:${rest.slice(last + 1)} for port ${rest.slice(last + 1)}` : "";
      throw new FlowSyntaxError(arg, `an IPv6 address after a protocol goes in brackets, as in URLs: ${head}:[${rest}] for the address${port}`);
    }
    const target = parseTarget(rest, arg);
    if (target.port !== undefined && !(named && ported)) throw new FlowSyntaxError(arg, "a port needs a protocol with ports first, e.g. tcp:ADDR:PORT");
    const base = { family: target.family, dst: target.dst, src: 0n, sport: 0, dport: target.port ?? 0, uid: 0, mark: 0, iif: "lo", forwarded: false };
    flows.push((named ? [protocol] : defaultProtocols).map((proto) => ({ ...base, proto: target.family === 6 && proto === 1 ? 58 : proto })));
  }
  return flows.flat();
}

// ---------------------------------------------------------------- verdicts

export interface Explained {
  readonly dst: string;
  readonly proto: string;
  readonly dport: number;
  readonly uid: number;
  /** The flow's source address (from=), null when the kernel would choose it. */
  readonly src: string | null;
  readonly sport: number;
  readonly mark: number;
  /** "lo" for this host's own traffic, else the interface forwarded traffic came in on. */
  readonly iif: string;
  readonly forwarded: boolean;
  readonly verdict: "tunnel" | "direct" | "unreachable";
  readonly interface: string | null;
  readonly table: string | null;
  readonly rule_priority: number | null;
  /** The route that decided, as `ip route` would show it. */
  readonly route: string | null;
  /** Every rule whose selectors matched, and what it did. */
  readonly steps: readonly { readonly priority: number; readonly rule: string; readonly origin: string; readonly result: string }[];
  /** Assumptions about the host this verdict rests on. */
  readonly assumes: readonly string[];
}

const MAIN_ASSUMPTION = "main holds only a default route (no connected subnets); run on the host or pass --rules/--routes";

export function ruleText(rule: Rule): string {
  const parts: string[] = [];
  if (rule.invert) parts.push("not");
  parts.push(`from ${rule.from ? formatPrefix(rule.from) : "all"}`);
  if (rule.to) parts.push(`to ${formatPrefix(rule.to)}`);
  if (rule.iif) parts.push(`iif ${rule.iif}`);
  if (rule.oif) parts.push(`oif ${rule.oif}`);
  if (rule.fwmark) parts.push(`fwmark 0x${rule.fwmark.value.toString(16)}${rule.fwmark.mask === 0xffffffff ? "" : `/0x${rule.fwmark.mask.toString(16)}`}`);
  if (rule.uid) parts.push(`uidrange ${rule.uid.start}-${rule.uid.end}`);
  if (rule.ipproto !== undefined) parts.push(`ipproto ${protocolName(rule.ipproto)}`);
  for (const [name, range] of [["sport", rule.sport], ["dport", rule.dport]] as const) {
    if (range) parts.push(`${name} ${range.start === range.end ? range.start : `${range.start}-${range.end}`}`);
  }
  const { action } = rule;
  if (action.kind === "lookup") parts.push(`lookup ${tableName(action.table)}${action.suppressPrefixLength === undefined ? "" : ` suppress_prefixlength ${action.suppressPrefixLength}`}`);
  else if (action.kind === "goto") parts.push(`goto ${action.priority}`);
  else parts.push(action.kind);
  return parts.join(" ");
}

export function routeText(route: Route): string {
  const dst = route.dst.length === 0 ? "default" : formatPrefix(route.dst);
  const parts = [route.type === "unicast" ? dst : `${route.type} ${dst}`];
  if (route.gateway) parts.push(`via ${route.gateway}`);
  if (route.dev && route.type !== "throw" && !["unreachable", "blackhole", "prohibit"].includes(route.type)) parts.push(`dev ${route.dev}`);
  if (route.origin === "assumed") parts.push("(assumed)");
  return parts.join(" ");
}

function stepResult(step: Step): string {
  const { outcome } = step;
  switch (outcome.kind) {
    case "nop":
      return "nop: next rule";
    case "goto":
      return outcome.resolved ? `goto ${outcome.priority}` : `goto ${outcome.priority}: no such rule, next rule`;
    case "no-route":
      return `no route in ${tableName(outcome.table)}: next rule`;
    case "throw":
      return `${routeText(outcome.route)}: next rule`;
    case "suppressed":
      return `${routeText(outcome.route)} suppressed (/${outcome.route.dst.length}): next rule`;
    case "route":
      return routeText(outcome.route);
    case "error":
      return outcome.route ? routeText(outcome.route) : outcome.error;
  }
}

export function verdictOf(decision: Decision, flow: FlowRequest, tunnel: string, hostAssumed: boolean): Explained {
  const steps = decision.steps.map((step) => ({ priority: step.rule.priority, rule: ruleText(step.rule), origin: step.rule.origin, result: stepResult(step) }));
  const consultedMain = decision.steps.some((s) => "table" in s.outcome && s.outcome.table === TABLE_IDS.main);
  let verdict: Explained["verdict"] = "unreachable";
  let dev: string | null = null;
  if (decision.kind === "route") {
    const { route } = decision;
    // Delivered to this host: its own and (IPv6) anycast addresses, and broadcasts that arrive.
    const delivered = route.type === "local" || route.type === "anycast" || (route.type === "broadcast" && flow.iif !== "lo");
    dev = delivered ? "lo" : (route.dev ?? null);
    // Only a route through the tunnel from a table is the split's doing (and multicast or
    // broadcast sent from the tunnel's own address, which leaves through it); the local table's
    // broadcast, multicast and anycast answers are the host's own and link-scope destinations.
    verdict = dev === tunnel && !delivered && (route.type === "unicast" || route.table !== TABLE_IDS.local) ? "tunnel" : "direct";
  }
  return {
    dst: formatAddress(flow.family, flow.dst),
    proto: protocolName(flow.proto),
    dport: flow.dport,
    uid: flow.uid,
    src: flow.src === 0n ? null : formatAddress(flow.family, flow.src),
    sport: flow.sport,
    mark: flow.mark,
    iif: flow.iif,
    forwarded: flow.forwarded,
    verdict,
    interface: dev,
    table: decision.table === undefined ? null : tableName(decision.table),
    rule_priority: decision.rule?.priority ?? null,
    route: decision.route ? routeText(decision.route) : null,
    steps,
    assumes: hostAssumed && consultedMain ? [MAIN_ASSUMPTION] : [],
  };
}

/** "tunnel wg0", "direct (main table)", "unreachable (no route to host)". */
export function verdictText(result: Explained): string {
  if (result.verdict === "tunnel") return `tunnel ${result.interface}`;
  if (result.verdict === "direct") {
    if (result.interface === "lo") return "direct (this host)";
    return `direct (${result.table ?? "main"} table${result.interface ? `, ${result.interface}` : ""})`;
  }
  if (result.route) return `unreachable (${result.table} table: ${result.route})`;
  return `unreachable (${result.rule_priority === null ? "no rule gave a route" : `rule ${result.rule_priority}`})`;
}

// --------------------------------------------------------- representative flows

interface Destination {
  readonly label: string;
  readonly address: string;
}

/** An address inside PREFIX that names it well: its first host (or the address itself for a single one). */
function memberOf(text: string): string | undefined {
  const parsed = parsePrefix(text);
  if (!parsed.ok) return undefined;
  const { family, network, length } = parsed.value;
  return formatAddress(family, length >= (family === 4 ? 31 : 127) ? network : network + 1n);
}

/**
 * The first and the last prefix of a list's cover, per family: a list can hold a million
 * prefixes, and its ends show how the table treats it (it treats them all alike).
 */
function listSamples(key: string, set: AddressSet): Destination[] {
  const byFamily = new Map<string, { first: string; last: string; count: number }>();
  set.forEachCidr((cidr) => {
    const family = cidr.includes(":") ? "IPv6" : "IPv4";
    const seen = byFamily.get(family);
    if (seen) Object.assign(seen, { last: cidr, count: seen.count + 1 });
    else byFamily.set(family, { first: cidr, last: cidr, count: 1 });
  });
  return [...byFamily].flatMap(([family, { first, last, count }]) =>
    [...new Set([first, last])].map((prefix) => ({
      label: `${key} ${prefix} (${prefix === first ? "first" : "last"} of ${count} ${family} prefixes)`,
      address: memberOf(prefix)!,
    })),
  );
}

export function representativeDestinations(spec: Spec, planned: PlannedRouting, lists: PlanLists = {}): Destination[] {
  const destinations: Destination[] = [
    { label: "public IPv4", address: "203.0.113.9" },
    { label: "public IPv6", address: "2001:db8::1" },
  ];
  for (const item of spec.split.exclude) {
    const sets = item === "@local" ? Object.entries(NAMED_SETS) : item.startsWith("@") ? [[item, namedSet(item) ?? []] as const] : [["excluded", [item]] as const];
    for (const [name, prefixes] of sets) {
      for (const prefix of prefixes) {
        const address = memberOf(prefix);
        if (address) destinations.push({ label: name === "excluded" ? `excluded ${prefix}` : `${name} ${prefix}`, address });
      }
    }
  }
  if (lists.exclude) destinations.push(...listSamples("split.exclude_files", lists.exclude));
  if (lists.include) destinations.push(...listSamples("split.include_files", lists.include));
  for (const peer of spec.tunnel.peers ?? []) {
    const host = peer.endpoint?.replace(/:[0-9]+$/, "").replace(/^\[|\]$/g, "");
    if (host && addressOf(host)) destinations.push({ label: "tunnel endpoint", address: host });
  }
  for (const link of planned.links) {
    for (const address of link.addresses) {
      const [host, lengthText] = address.split("/");
      const own = addressOf(host!);
      if (!own) continue;
      const hostBits = BigInt((own.family === 4 ? 32 : 128) - Number(lengthText));
      if (hostBits === 0n) {
        destinations.push({ label: `tunnel address ${address}`, address: host! });
      } else {
        // Another host of the tunnel's subnet (e.g. the peer's tunnel address).
        const network = (own.value >> hostBits) << hostBits;
        const other = network + 1n === own.value ? network + 2n : network + 1n;
        destinations.push({ label: `tunnel subnet ${address}`, address: formatAddress(own.family, other) });
      }
    }
  }
  const seen = new Set<string>();
  return destinations.filter((d) => !seen.has(d.address) && seen.add(d.address));
}

/** A column of the representative table: a kind of flow the plan's rules capture, or plain TCP/UDP. */
interface FlowTemplate {
  readonly label: string;
  readonly proto: number;
  readonly dport: number;
  readonly uid: number;
}

export function flowTemplates(planned: PlannedRouting): FlowTemplate[] {
  const templates = new Map<string, FlowTemplate>();
  const add = (proto: number, dport: number, uid: number) => {
    const label = [dport ? `${protocolName(proto)}:${dport}` : protocolName(proto), uid ? `uid=${uid}` : ""].filter(Boolean).join(" ");
    if (!templates.has(label)) templates.set(label, { label, proto, dport, uid });
  };
  for (const rule of planned.rules) {
    const { action } = rule;
    if (action.kind !== "lookup" || !planned.ownTables.has(action.table)) continue;
    for (const proto of rule.ipproto === undefined ? [6, 17] : [rule.ipproto]) add(proto, rule.dport?.start ?? 0, rule.uid?.start ?? 0);
  }
  add(6, 0, 0);
  add(17, 0, 0);
  return [...templates.values()];
}

/** The fwmark the tunnel puts on its own packets ([WireGuard] FirewallMark=), if any. */
function tunnelFwmark(plan: Plan): number | undefined {
  for (const unit of plan.units) {
    if (unit.kind !== "netdev") continue;
    const mark = sectionsOf(unit).find((s) => s.name === "WireGuard")?.entries.find((e) => e.key === "FirewallMark")?.value;
    if (mark !== undefined) return Number(mark);
  }
  return undefined;
}

// -------------------------------------------------------------------- command

export interface ExplainOptions {
  readonly json?: boolean;
  readonly rules?: string;
  readonly routes?: string;
  readonly offline?: boolean;
}

async function hostState(options: ExplainOptions): Promise<{ source: HostSource; state: RoutingState; note?: string }> {
  if ((options.rules === undefined) !== (options.routes === undefined)) {
    throw new CommandError(
      `explain: --rules and --routes go together: { ip -4 -N -j rule; ip -6 -N -j rule; } > ${options.rules ?? "rules.json"} and ip -N -j route show table all > ${options.routes ?? "routes.json"}`,
      2,
    );
  }
  if (options.rules !== undefined && options.routes !== undefined) {
    return { source: { kind: "files", rules: options.rules, routes: options.routes }, state: await readStateFiles(options.rules, options.routes) };
  }
  if (options.offline) return { source: { kind: "assumed" }, state: assumedHost() };
  try {
    return { source: { kind: "live" }, state: await readLiveState(localIp) };
  } catch (error) {
    if ((error as Error).message.includes("ENOENT")) {
      return { source: { kind: "assumed" }, state: assumedHost(), note: "explain: `ip` is not installed here, so the host is assumed (use --rules/--routes to explain for another machine)" };
    }
    throw error;
  }
}

function flowText(flow: Explained): string {
  const family = flow.dst.includes(":") ? 6 : 4;
  const target = flow.dport ? (family === 6 ? `[${flow.dst}]:${flow.dport}` : `${flow.dst}:${flow.dport}`) : flow.dst;
  const words = [`${flow.proto} ${target}`, flow.src ? `from=${flow.src}` : "", flow.sport ? `sport=${flow.sport}` : "", flow.uid ? `uid=${flow.uid}` : "", flow.mark ? `mark=0x${flow.mark.toString(16)}` : ""];
  if (flow.forwarded) words.push("forwarded", flow.iif.startsWith("(") ? "" : `iif=${flow.iif}`);
  return words.filter(Boolean).join(" ");
}

function sourceText(source: HostSource): string {
  if (source.kind === "live") return "host: this machine's rules and routes (ip rule, ip route show table all)";
  if (source.kind === "files") return `host: ${source.rules} and ${source.routes}`;
  return "host: unknown; verdicts marked * assume main holds only a default route (run on the host, or pass --rules/--routes)";
}

function lookupLines(paint: Painter, lookup: Lookup & { queries: readonly Explained[] }): string[] {
  const where = lookup.goes_to === "tunnel" ? `${lookup.servers.join(", ")} (tunnel.dns, domain ${lookup.matched_domain})` : "the other links' DNS servers, not the tunnel's";
  return [
    `${paint("bold", `lookup ${lookup.name}`)}  →  ${lookup.goes_to === "tunnel" ? paint("green", where) : where}`,
    ...lookup.notes.map((n) => paint("dim", `  ${n}`)),
    ...lookup.queries.map((q) => `  query ${flowText(q)}  →  ${paintVerdict(paint, q)}`),
  ];
}

function paintVerdict(paint: Painter, result: Explained): string {
  const text = verdictText(result) + (result.assumes.length ? " *" : "");
  return result.verdict === "tunnel" ? paint("green", text) : result.verdict === "unreachable" ? paint("red", text) : text;
}

/** Explains FLOW_WORDS (or a table of representative destinations) for SPEC; returns the exit code. */
export async function runExplain(specPath: string, flowWords: readonly string[], options: ExplainOptions): Promise<number> {
  const { spec, plan, lists } = await generate(specPath, { outputDir: ".", prefix: "50" });
  const planned = plannedRouting(plan);
  const { source, state: host, note } = await hostState(options);
  if (note) process.stderr.write(`${note}\n`);
  const state = simulationState(planned, host);
  const planPriorities = new Set(planned.rules.map((r) => `${r.family}:${r.priority}`));
  for (const rule of host.rules) {
    // Left from an earlier spec, or added by hand: simulated as the host has it; doctor reports it.
    if (rule.action.kind === "lookup" && planned.ownTables.has(rule.action.table) && !planPriorities.has(`${rule.family}:${rule.priority}`)) {
      process.stderr.write(`explain: note: the host has a rule the plan does not, and it is simulated: priority ${rule.priority} ${ruleText(rule)} (see gen-networkd doctor)\n`);
    }
  }
  const tunnel = spec.tunnel.interface;
  const assumed = source.kind === "assumed";
  const protocols = [...new Set([6, 17, ...planned.rules.flatMap((r) => (r.ipproto === undefined ? [] : [r.ipproto]))])];
  const explain = (flow: FlowRequest) => verdictOf(decide(state, flow), flow, tunnel, assumed);
  const paint = painter(process.stdout);

  const lookupWords = flowWords.filter((w) => w.startsWith(LOOKUP_PREFIX));
  if (lookupWords.length > 0) {
    if (lookupWords.length !== flowWords.length) throw new CommandError("explain: name lookups (dns:NAME) and flows go in separate runs", 2);
    const lookups = lookupWords.map((word) => {
      const parsed = lookupName(word);
      if ("error" in parsed) throw new CommandError(`explain: ${parsed.error}`, 2);
      const lookup = explainLookup(spec, parsed.name);
      // The queries as resolved sends them: from this host, to port 53, over UDP and (long answers) TCP.
      const queries = resolverAddresses(lookup).flatMap((a) =>
        [17, 6].map((proto) => explain({ family: a.family, dst: a.value, src: 0n, sport: 0, dport: 53, uid: 0, mark: 0, iif: "lo", forwarded: false, proto })),
      );
      return { ...lookup, queries };
    });
    if (options.json) {
      process.stdout.write(`${JSON.stringify(lookups, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(`${[paint("dim", sourceText(source)), ...lookups.flatMap((l) => lookupLines(paint, l))].join("\n")}\n`);
    return 0;
  }

  if (flowWords.length > 0) {
    const results = parseFlows(flowWords, protocols).map(explain);
    if (options.json) {
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      return 0;
    }
    const lines = [paint("dim", sourceText(source))];
    for (const result of results) {
      lines.push(`${paint("bold", flowText(result))}  →  ${paintVerdict(paint, result)}`);
      lines.push(...columns(result.steps.map((s) => [`  ${s.priority}`, s.rule, s.result])).map((l) => paint("dim", l)));
    }
    process.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  }

  const templates = flowTemplates(planned);
  const fwmark = tunnelFwmark(plan);
  const rows = representativeDestinations(spec, planned, lists).map((destination) => {
    const address = addressOf(destination.address)!;
    const mark = destination.label === "tunnel endpoint" && fwmark !== undefined ? fwmark : 0;
    const label = mark ? `${destination.label} (its packets: mark ${mark})` : destination.label;
    const base = { family: address.family, dst: address.value, src: 0n, sport: 0, mark, iif: "lo", forwarded: false };
    return { label, address: destination.address, results: templates.map((t) => explain({ ...base, proto: address.family === 6 && t.proto === 1 ? 58 : t.proto, dport: t.dport, uid: t.uid })) };
  });
  if (options.json) {
    process.stdout.write(`${JSON.stringify(rows.flatMap(({ label, results }) => results.map((r) => ({ label, ...r }))), null, 2)}\n`);
    return 0;
  }
  const header = ["destination", "what", ...templates.map((t) => t.label)];
  const table = columns([header.map((h) => paint("bold", h)), ...rows.map(({ label, address, results }) => [address, label, ...results.map((r) => paintVerdict(paint, r))])]);
  process.stdout.write(`${[paint("dim", sourceText(source)), ...table].join("\n")}\n`);
  return 0;
}
