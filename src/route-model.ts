// A model of Linux policy routing: which rule, which table, which route a flow gets.
//
// It follows the kernel's fib_rules_lookup and the per-family table lookups
// (net/core/fib_rules.c, net/ipv4/fib_rules.c, net/ipv6/fib6_rules.c):
//   - rules are tried in priority order (ties in the order the kernel lists them);
//     a rule applies when all its selectors match, or none of them with `not`; an IPv6
//     rule's source prefix never matches a lookup that has no source yet (fib6_rule_match:
//     without RT6_LOOKUP_F_HAS_SADDR), while IPv4 compares it with 0.0.0.0;
//   - `lookup T` finds the longest prefix in T containing the destination (lowest
//     metric, then list order, among equal prefixes). No route, or a `throw` route,
//     continues with the next rule; an unreachable/blackhole/prohibit route ends the
//     lookup with an error; any other route is the answer, unless the rule has
//     `suppress_prefixlength N` and the route's prefix is N bits or shorter, which
//     also continues with the next rule;
//   - `goto P` continues at the first rule of priority P (an unresolved goto is
//     skipped), `nop` does nothing, unreachable/blackhole/prohibit rules end it;
//   - when no rule gives an answer the lookup fails ("network unreachable").
// The lab pins this model to the kernel (test/lab/explain-kernel.test.ts).

import { containsAddress, type Family, type Prefix } from "./prefix.js";

export type RouteType = "unicast" | "local" | "broadcast" | "multicast" | "anycast" | "throw" | "unreachable" | "blackhole" | "prohibit";
export type ErrorKind = "unreachable" | "blackhole" | "prohibit";

export const TABLE_IDS: Readonly<Record<string, number>> = { unspec: 0, default: 253, main: 254, local: 255 };
const TABLE_NAMES = new Map(Object.entries(TABLE_IDS).map(([name, id]) => [id, name]));

export function tableName(table: number): string {
  return TABLE_NAMES.get(table) ?? String(table);
}

export interface Range {
  readonly start: number;
  readonly end: number;
}

export type RuleAction =
  | { readonly kind: "lookup"; readonly table: number; readonly suppressPrefixLength?: number }
  | { readonly kind: "goto"; readonly priority: number }
  | { readonly kind: "nop" }
  | { readonly kind: ErrorKind };

/** Where a rule or route comes from: the plan (what we emit), the host, or an assumption about the host. */
export type Origin = "plan" | "host" | "assumed";

export interface Rule {
  readonly family: Family;
  readonly priority: number;
  readonly invert?: boolean;
  readonly from?: Prefix;
  readonly to?: Prefix;
  /** Interface names; a selector naming an interface that does not exist never matches. */
  readonly iif?: string;
  readonly oif?: string;
  readonly fwmark?: { readonly value: number; readonly mask: number };
  readonly uid?: Range;
  readonly ipproto?: number;
  readonly sport?: Range;
  readonly dport?: Range;
  readonly action: RuleAction;
  readonly origin: Origin;
}

export interface Route {
  readonly family: Family;
  readonly table: number;
  readonly dst: Prefix;
  readonly type: RouteType;
  readonly dev?: string;
  readonly gateway?: string;
  readonly metric: number;
  readonly origin: Origin;
}

export interface RoutingState {
  readonly rules: readonly Rule[];
  readonly routes: readonly Route[];
}

/** One packet's routing key, as the kernel's flowi carries it. */
export interface Flow {
  readonly family: Family;
  readonly dst: bigint;
  /** Source address; 0 (unset) for a locally generated flow before source selection. */
  readonly src: bigint;
  readonly proto: number;
  readonly sport: number;
  readonly dport: number;
  readonly uid: number;
  readonly mark: number;
  /** Incoming interface: "lo" for locally generated traffic. */
  readonly iif: string;
  /** Outgoing interface the socket is bound to, if any. */
  readonly oif?: string;
}

/** What one rule whose selectors matched did with the flow. */
export type StepOutcome =
  | { readonly kind: "nop" }
  | { readonly kind: "goto"; readonly priority: number; readonly resolved: boolean }
  | { readonly kind: "no-route"; readonly table: number }
  | { readonly kind: "throw"; readonly table: number; readonly route: Route }
  | { readonly kind: "suppressed"; readonly table: number; readonly route: Route }
  | { readonly kind: "route"; readonly table: number; readonly route: Route }
  | { readonly kind: "error"; readonly error: ErrorKind; readonly table?: number; readonly route?: Route };

export interface Step {
  readonly rule: Rule;
  readonly outcome: StepOutcome;
}

export type Decision =
  | { readonly kind: "route"; readonly rule?: Rule; readonly table?: number; readonly route: Route; readonly steps: readonly Step[] }
  | { readonly kind: "error"; readonly error: ErrorKind | "no-rule"; readonly rule?: Rule; readonly table?: number; readonly route?: Route; readonly steps: readonly Step[] };

const ERROR_TYPES: ReadonlySet<RouteType> = new Set(["unreachable", "blackhole", "prohibit"]);

const inRange = (range: Range | undefined, value: number) => range === undefined || (value >= range.start && value <= range.end);

export function ruleMatches(rule: Rule, flow: Flow): boolean {
  const all =
    (rule.iif === undefined || rule.iif === flow.iif) &&
    (rule.oif === undefined || rule.oif === flow.oif) &&
    (rule.fwmark === undefined || ((rule.fwmark.value ^ flow.mark) & rule.fwmark.mask) >>> 0 === 0) &&
    inRange(rule.uid, flow.uid) &&
    (rule.from === undefined || rule.from.length === 0 || (!(flow.family === 6 && flow.src === 0n) && containsAddress(rule.from, flow.family, flow.src))) &&
    (rule.to === undefined || containsAddress(rule.to, flow.family, flow.dst)) &&
    (rule.ipproto === undefined || rule.ipproto === flow.proto) &&
    inRange(rule.sport, flow.sport) &&
    inRange(rule.dport, flow.dport);
  return rule.invert ? !all : all;
}

/** The rules of one family in the kernel's evaluation order: by priority, ties kept in list order. */
export function orderedRules(state: RoutingState, family: Family): Rule[] {
  return state.rules
    .map((rule, index) => ({ rule, index }))
    .filter(({ rule }) => rule.family === family)
    .sort((a, b) => a.rule.priority - b.rule.priority || a.index - b.index)
    .map(({ rule }) => rule);
}

/** The route a table gives the destination: longest prefix, then lowest metric, then list order. */
export function lookupTable(state: RoutingState, table: number, family: Family, dst: bigint): Route | undefined {
  let best: Route | undefined;
  for (const route of state.routes) {
    if (route.table !== table || route.family !== family || !containsAddress(route.dst, family, dst)) continue;
    if (best === undefined || route.dst.length > best.dst.length || (route.dst.length === best.dst.length && route.metric < best.metric)) best = route;
  }
  return best;
}

const MULTICAST4: Prefix = { family: 4, network: 0xe0000000n, length: 4 };
const LIMITED_BROADCAST = 0xffffffffn;

/**
 * IPv4 multicast and limited broadcast from a socket bound to one of this host's addresses
 * leave through the link that holds the address, before any rule (ip_route_output_key_hash_rcu:
 * "direct multicasts and limited broadcast via necessary interface").
 */
function sourceDeviceRoute(state: RoutingState, flow: Flow): Route | undefined {
  if (flow.family !== 4 || flow.src === 0n || flow.iif !== "lo" || flow.oif !== undefined) return undefined;
  const broadcast = flow.dst === LIMITED_BROADCAST;
  if (!broadcast && !containsAddress(MULTICAST4, 4, flow.dst)) return undefined;
  const own = state.routes.find((r) => r.family === 4 && r.table === TABLE_IDS.local && r.type === "local" && r.dst.length === 32 && r.dst.network === flow.src);
  if (own?.dev === undefined) return undefined;
  return { family: 4, table: TABLE_IDS.main!, dst: { family: 4, network: flow.dst, length: 32 }, type: broadcast ? "broadcast" : "multicast", dev: own.dev, metric: 0, origin: "host" };
}

/**
 * The kernel's answer for FLOW: the route it takes, or the error it gets, with every
 * rule whose selectors matched on the way. IPv4 0.0.0.0 is answered before any
 * rule, as the kernel does for this host's own lookups, whatever their source (it means this
 * host), and so are multicast and limited broadcast from a bound source (sourceDeviceRoute).
 */
export function decide(state: RoutingState, flow: Flow): Decision {
  if (flow.family === 4 && flow.dst === 0n && (flow.src === 0n || flow.iif === "lo")) {
    return { kind: "route", route: { family: 4, table: TABLE_IDS.local!, dst: { family: 4, network: 0n, length: 32 }, type: "local", dev: "lo", metric: 0, origin: "host" }, steps: [] };
  }
  const bySource = sourceDeviceRoute(state, flow);
  if (bySource) return { kind: "route", route: bySource, steps: [] };
  const rules = orderedRules(state, flow.family);
  const steps: Step[] = [];
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (!ruleMatches(rule, flow)) continue;
    const { action } = rule;
    if (action.kind === "nop") {
      steps.push({ rule, outcome: { kind: "nop" } });
    } else if (action.kind === "goto") {
      const target = rules.findIndex((r) => r.priority === action.priority);
      steps.push({ rule, outcome: { kind: "goto", priority: action.priority, resolved: target >= 0 } });
      // The kernel only accepts gotos to later priorities; the target is matched like any rule.
      if (target > i) i = target - 1;
    } else if (action.kind !== "lookup") {
      steps.push({ rule, outcome: { kind: "error", error: action.kind } });
      return { kind: "error", error: action.kind, rule, steps };
    } else {
      const { table } = action;
      const route = lookupTable(state, table, flow.family, flow.dst);
      if (route === undefined) {
        steps.push({ rule, outcome: { kind: "no-route", table } });
      } else if (route.type === "throw") {
        steps.push({ rule, outcome: { kind: "throw", table, route } });
      } else if (ERROR_TYPES.has(route.type)) {
        const error = route.type as ErrorKind;
        steps.push({ rule, outcome: { kind: "error", error, table, route } });
        return { kind: "error", error, rule, table, route, steps };
      } else if (action.suppressPrefixLength !== undefined && route.dst.length <= action.suppressPrefixLength) {
        steps.push({ rule, outcome: { kind: "suppressed", table, route } });
      } else {
        steps.push({ rule, outcome: { kind: "route", table, route } });
        return { kind: "route", rule, table, route, steps };
      }
    }
  }
  return { kind: "error", error: "no-rule", steps };
}
